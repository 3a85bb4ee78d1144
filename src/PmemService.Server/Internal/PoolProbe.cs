using Pmem2;

namespace PmemService.Server.Internal;

/// <summary>What the pool's filesystem gives: effective granularity and whether MAP_SYNC works.</summary>
/// <param name="Granularity">Finest granularity a region in the pool gets.</param>
/// <param name="MapSync">Whether the kernel really maps pool files with MAP_SYNC (DAX), checked with a
/// raw MAP_SYNC mmap that PMEM2_FORCE_GRANULARITY cannot fake.</param>
/// <param name="Reason">Why CACHE_LINE (or real MAP_SYNC) is unavailable, or null when it is.</param>
/// <param name="Error">Why the probe could not run at all (full pool, read-only pool, ...), or null.</param>
internal sealed record PoolProbeResult(Pmem2Granularity Granularity, bool MapSync, string? Reason, string? Error = null);

/// <summary>
/// Start-up probe: creates a small fully allocated temp file in the pool (through the pool
/// descriptor), checks a real MAP_SYNC mmap, and maps it requiring CACHE_LINE, which succeeds only
/// with MAP_SYNC (DAX) or eADR; otherwise maps it at PAGE. A pool that cannot hold the probe file
/// (ENOSPC, EROFS, EACCES) gives a result with <see cref="PoolProbeResult.Error"/>: the service starts
/// and readiness reports NOT_SERVING with that reason until a later probe succeeds.
/// </summary>
internal static class PoolProbe
{
    private const ulong ProbeSize = 4096;

    public static PoolProbeResult Run(PoolDirectory pool)
    {
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        string name;
        try
        {
            (handle, name) = pool.CreateProbeFile(ProbeSize);
        }
        catch (Pmem2Exception e)
        {
            return new PoolProbeResult(Pmem2Granularity.Page, false, null, $"cannot create a probe file in the pool: {e.Message}");
        }

        try
        {
            using (handle)
            {
                var realMapSync = Pmem2Files.HasMapSync(handle, ProbeSize);
                using var source = Pmem2Source.FromHandle(handle);
                try
                {
                    using var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.CacheLine }, source);
                    return new PoolProbeResult(map.StoreGranularity, realMapSync,
                        realMapSync ? null : "the kernel refuses MAP_SYNC on the pool (not DAX); CACHE_LINE comes from PMEM2_FORCE_GRANULARITY or eADR only");
                }
                catch (Pmem2Exception e) when (e.Code == Pmem2ErrorCode.GranularityNotSupported)
                {
                    using var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page }, source);
                    return new PoolProbeResult(map.StoreGranularity, realMapSync, e.Message);
                }
            }
        }
        catch (Pmem2Exception e)
        {
            return new PoolProbeResult(Pmem2Granularity.Page, false, null, $"cannot map a probe file in the pool: {e.Message}");
        }
        finally
        {
            pool.TryDelete(name);
        }
    }
}
