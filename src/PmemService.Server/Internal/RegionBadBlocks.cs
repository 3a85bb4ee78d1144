using System.Collections.Concurrent;
using System.Diagnostics;
using Grpc.Core;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pmem2;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal;

/// <summary>
/// Known NVDIMM bad ranges of region files (Pmem2's pmem2_badblock_* over sysfs and FIEMAP), for
/// GetRegion, readiness, reads (DATA_LOSS instead of a machine check) and writes (cleared first).
/// A region's list is read at most once a second (the sysfs walk and FIEMAP cost tens of µs) and
/// again right after the service clears a range. Pools off any NVDIMM namespace have none, at the
/// cost of one realpath per scan.
/// </summary>
internal sealed class RegionBadBlocks
{
    private static readonly long s_ttl = Stopwatch.Frequency; // 1 s

    private readonly ConcurrentDictionary<string, Entry> _cache = new(StringComparer.Ordinal);
    private readonly string _sysfsRoot;
    private readonly string _poolPath;
    private readonly ILogger<RegionBadBlocks> _logger;

    public RegionBadBlocks(IOptions<PmemServiceOptions> options, ILogger<RegionBadBlocks> logger)
    {
        _sysfsRoot = string.IsNullOrEmpty(options.Value.SysfsRoot) ? "/sys" : options.Value.SysfsRoot;
        _poolPath = options.Value.FullPoolPath;
        _logger = logger;
    }

    /// <summary>The path of region <paramref name="name"/>'s file (bad ranges are looked up per file).</summary>
    public string PathOf(string name) => Path.Combine(_poolPath, name);

    /// <summary>The known bad ranges of the region file at <paramref name="path"/> (empty when none or
    /// when they cannot be read; a scan failure is logged, not thrown).</summary>
    public IReadOnlyList<Pmem2BadBlock> Known(string path)
    {
        var now = Stopwatch.GetTimestamp();
        if (_cache.TryGetValue(path, out var entry) && now - entry.Stamp < s_ttl)
        {
            return entry.Ranges;
        }

        var ranges = Scan(path);
        _cache[path] = new Entry(now, ranges);
        if (ranges.Length > 0 && (entry is null || !entry.Ranges.SequenceEqual(ranges)))
        {
            RegionBadBlocksLog.BadBlocksKnown(_logger, Path.GetFileName(path), ranges.Length, Describe(ranges));
        }

        return ranges;
    }

    /// <summary>Adds the known bad ranges to a RegionInfo (GetRegion).</summary>
    public RegionInfo Annotate(RegionInfo info, string path)
    {
        foreach (var bb in Known(path))
        {
            info.BadRanges.Add(new BadRange { Offset = bb.Offset, Length = bb.Length });
        }

        return info;
    }

    /// <summary>DATA_LOSS (reason BAD_BLOCK, metadata bad_offset / bad_length) when
    /// [offset, offset+length) touches a known bad range.</summary>
    public void ThrowIfTouched(string name, string path, ulong offset, ulong length)
    {
        foreach (var bb in Known(path))
        {
            if (bb.Overlaps(offset, length))
            {
                RegionBadBlocksLog.BadBlockRead(_logger, name, offset, length, bb.Offset, bb.Length);
                throw new PmemServiceException(StatusCode.DataLoss, PmemErrorReasons.BadBlock,
                    $"Region '{name}' has a bad range [{bb.Offset}, {bb.End}) (NVDIMM bad block) inside the requested [{offset}, {offset + length}); its data is lost. Writing over the whole range clears it.")
                    .With("bad_offset", bb.Offset).With("bad_length", bb.Length);
            }
        }
    }

    /// <summary>
    /// Before a write over [offset, offset+length): clears every known bad range it touches where
    /// the platform allows (regular files: the blocks are deallocated and allocated again, so the rest
    /// of a cleared block reads as zeros; device DAX without the ARS interface: NOSUPP, logged, the
    /// write goes ahead). Returns the number of ranges cleared.
    /// </summary>
    public int ClearBeforeWrite(RegionLease lease, ulong offset, ulong length)
    {
        var path = PathOf(lease.Name);
        var touched = Known(path).Where(bb => bb.Overlaps(offset, length)).ToList();
        if (touched.Count == 0)
        {
            return 0;
        }

        var cleared = 0;
        try
        {
            using var source = Pmem2Source.Open(path, FileAccess.ReadWrite);
            using var context = Pmem2BadBlockContext.Create(source, _sysfsRoot);
            foreach (var bb in touched)
            {
                try
                {
                    context.Clear(bb);
                    cleared++;
                    RegionBadBlocksLog.BadBlockCleared(_logger, lease.Name, bb.Offset, bb.Length);
                }
                catch (Pmem2Exception e)
                {
                    RegionBadBlocksLog.BadBlockClearFailed(_logger, lease.Name, bb.Offset, bb.Length, e.Message);
                }
            }
        }
        catch (Pmem2Exception e)
        {
            RegionBadBlocksLog.BadBlockClearFailed(_logger, lease.Name, offset, length, e.Message);
        }
        finally
        {
            _cache.TryRemove(path, out _);
        }

        return cleared;
    }

    /// <summary>Every region file of the pool with known bad ranges (readiness).</summary>
    public Dictionary<string, IReadOnlyList<Pmem2BadBlock>> KnownInPool(string poolPath)
    {
        var result = new Dictionary<string, IReadOnlyList<Pmem2BadBlock>>(StringComparer.Ordinal);
        if (!Directory.Exists(poolPath))
        {
            return result;
        }

        foreach (var file in Directory.EnumerateFiles(poolPath))
        {
            var name = Path.GetFileName(file);
            if (name.StartsWith('.')) // probes and files being created; region names never start with '.'
            {
                continue;
            }

            var ranges = Known(file);
            if (ranges.Count > 0)
            {
                result[name] = ranges;
            }
        }

        return result;
    }

    public static string Describe(IEnumerable<Pmem2BadBlock> ranges) =>
        string.Join(", ", ranges.Select(bb => $"[{bb.Offset}, {bb.End})"));

    private Pmem2BadBlock[] Scan(string path)
    {
        try
        {
            using var source = Pmem2Source.Open(path, FileAccess.Read);
            using var context = Pmem2BadBlockContext.Create(source, _sysfsRoot);
            return context.HasDevice ? [.. context.ReadAll()] : [];
        }
        catch (Exception e) when (e is Pmem2Exception or IOException or UnauthorizedAccessException)
        {
            if (File.Exists(path))
            {
                RegionBadBlocksLog.BadBlockScanFailed(_logger, Path.GetFileName(path), e.Message);
            }

            return [];
        }
    }

    private sealed record Entry(long Stamp, Pmem2BadBlock[] Ranges);
}

/// <summary>Readiness: lists the regions with known bad ranges (Degraded, still serving: the other
/// data is intact and reads of the bad ranges answer DATA_LOSS).</summary>
internal sealed class BadBlocksHealthCheck : IHealthCheck
{
    private readonly RegionManager _regions;
    private readonly RegionBadBlocks _badBlocks;

    public BadBlocksHealthCheck(RegionManager regions, RegionBadBlocks badBlocks)
    {
        _regions = regions;
        _badBlocks = badBlocks;
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        var known = _badBlocks.KnownInPool(_regions.PoolPath);
        if (known.Count == 0)
        {
            return Task.FromResult(HealthCheckResult.Healthy("no known bad blocks"));
        }

        var data = known.ToDictionary(kv => kv.Key, kv => (object)RegionBadBlocks.Describe(kv.Value), StringComparer.Ordinal);
        return Task.FromResult(HealthCheckResult.Degraded(
            $"{known.Count} region(s) with known bad ranges: {string.Join(", ", known.Keys)}", data: data));
    }
}

/// <summary>Bad-block log messages (event ids 60-69).</summary>
internal static partial class RegionBadBlocksLog
{
    [LoggerMessage(60, LogLevel.Warning, "Region {Region} has {Count} known bad range(s): {Ranges}", EventName = "BadBlocksKnown")]
    public static partial void BadBlocksKnown(ILogger logger, string region, int count, string ranges);

    [LoggerMessage(61, LogLevel.Information, "Region {Region}: bad range at {Offset} (+{Length}) cleared before a write", EventName = "BadBlockCleared")]
    public static partial void BadBlockCleared(ILogger logger, string region, ulong offset, ulong length);

    [LoggerMessage(62, LogLevel.Warning, "Region {Region}: bad range at {Offset} (+{Length}) could not be cleared: {Error}", EventName = "BadBlockClearFailed")]
    public static partial void BadBlockClearFailed(ILogger logger, string region, ulong offset, ulong length, string error);

    [LoggerMessage(63, LogLevel.Warning, "Region {Region}: bad blocks could not be read: {Error}", EventName = "BadBlockScanFailed")]
    public static partial void BadBlockScanFailed(ILogger logger, string region, string error);

    [LoggerMessage(64, LogLevel.Warning, "Region {Region}: read of [{Offset}, +{Length}) refused, it touches the bad range at {BadOffset} (+{BadLength})", EventName = "BadBlockRead")]
    public static partial void BadBlockRead(ILogger logger, string region, ulong offset, ulong length, ulong badOffset, ulong badLength);
}
