using System.Globalization;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal.BadBlocks;

/// <summary>How the namespace behind a source is used (ndctl_namespace_get_mode).</summary>
internal enum NdNamespaceMode
{
    /// <summary>fsdax: a pfn device claims the namespace; its block device lists bad blocks.</summary>
    FsDax,
    /// <summary>devdax: a dax device claims the namespace.</summary>
    DevDax,
    /// <summary>raw namespace (block device straight on the namespace).</summary>
    Raw,
    /// <summary>sector mode (btt).</summary>
    Sector,
}

/// <summary>A bad range as sysfs lists it: 512-byte sectors, "offset length" per line.</summary>
internal readonly record struct SectorRange(ulong Offset, ulong Length);

/// <summary>
/// The NVDIMM region and namespace behind a source, found in sysfs in place of libndctl's
/// ndctl_region_namespace (region_namespace_ndctl.c): the resolved sysfs path of the device
/// (/sys/dev/block/M:m of the file's st_dev, /sys/dev/char/M:m of a device DAX's st_rdev) runs
/// .../ndbusN/regionR/&lt;claim&gt;/..., where the claiming device names the mode: pfnR.N = fsdax,
/// daxR.N = devdax, bttR.N = sector, namespaceR.N = raw. Bad ranges come from the block device's
/// badblocks (fsdax, offsets relative to the namespace) or the region's badblocks (offsets relative
/// to the region, clipped to the namespace's resource/size bounds), both in 512-byte sectors.
/// </summary>
internal sealed class NdNamespace
{
    private NdNamespace(NdNamespaceMode mode, string regionDir, string claimDir, string? blockDir, string? bus)
    {
        Mode = mode;
        RegionDirectory = regionDir;
        ClaimDirectory = claimDir;
        BlockDirectory = blockDir;
        Bus = bus;
    }

    public NdNamespaceMode Mode { get; }

    /// <summary>The sysfs directory of regionN.</summary>
    public string RegionDirectory { get; }

    /// <summary>The sysfs directory of the device claiming the namespace (pfn/dax/btt or the namespace itself).</summary>
    public string ClaimDirectory { get; }

    /// <summary>The whole-disk block device directory (fsdax, raw, sector).</summary>
    public string? BlockDirectory { get; }

    /// <summary>"ndbusN" of the region, for the ARS clear-error commands (/dev/ndctlN).</summary>
    public string? Bus { get; }

    /// <summary>The region and namespace of the source, or null when it is not on an NVDIMM namespace
    /// (libpmem2 then reports no bad blocks).</summary>
    public static NdNamespace? Find(Pmem2Source source)
    {
        var devdax = source.Type == Pmem2SourceType.DeviceDax;
        var dev = devdax ? source.DeviceNumber : source.FileSystemDevice;
        var link = Path.Combine(DeviceDax.SysRoot, "dev", devdax ? "char" : "block", $"{LibC.Major(dev)}:{LibC.Minor(dev)}");
        var real = LibC.RealPath(link, out _);
        if (real is null)
        {
            return null;
        }

        var parts = real.Split('/');
        var r = Array.FindLastIndex(parts, IsRegionName);
        if (r < 0 || r + 1 >= parts.Length)
        {
            return null;
        }

        var regionDir = string.Join('/', parts, 0, r + 1);
        var claim = parts[r + 1];
        var claimDir = string.Join('/', parts, 0, r + 2);
        var bus = r > 0 && parts[r - 1].StartsWith("ndbus", StringComparison.Ordinal) ? parts[r - 1] : null;
        NdNamespaceMode mode;
        if (devdax)
        {
            if (!claim.StartsWith("dax", StringComparison.Ordinal))
            {
                return null;
            }

            mode = NdNamespaceMode.DevDax;
        }
        else if (claim.StartsWith("pfn", StringComparison.Ordinal))
        {
            mode = NdNamespaceMode.FsDax;
        }
        else if (claim.StartsWith("btt", StringComparison.Ordinal))
        {
            mode = NdNamespaceMode.Sector;
        }
        else if (claim.StartsWith("namespace", StringComparison.Ordinal))
        {
            mode = NdNamespaceMode.Raw;
        }
        else
        {
            return null;
        }

        string? blockDir = null;
        if (!devdax)
        {
            // A partition's directory sits inside its disk's and has a "partition" attribute; bad
            // blocks are listed for the whole disk.
            blockDir = File.Exists(Path.Combine(real, "partition")) ? Path.GetDirectoryName(real) : real;
        }

        return new NdNamespace(mode, regionDir, claimDir, blockDir, bus);
    }

    /// <summary>The namespace's bounds relative to the start of its region, in bytes
    /// (badblocks_get_namespace_bounds): resource and size of the pfn/dax claim, or of the
    /// namespace for raw and btt, minus the region's resource.</summary>
    public (ulong Begin, ulong Size, ulong RegionResource) Bounds()
    {
        var kind = Mode switch
        {
            NdNamespaceMode.DevDax => "dax",
            NdNamespaceMode.FsDax => "pfn",
            _ => "raw/btt",
        };
        var nsDir = ClaimDirectory;
        if (Mode == NdNamespaceMode.Sector && ReadText(Path.Combine(ClaimDirectory, "namespace")) is { } ns)
        {
            nsDir = Path.Combine(RegionDirectory, ns.Trim());
        }

        if (!TryReadULong(Path.Combine(nsDir, "resource"), out var offset))
        {
            Errors.Throw(Pmem2ErrorCode.CannotReadBounds, $"({kind}) cannot read offset of the namespace");
        }

        if (!TryReadULong(Path.Combine(nsDir, "size"), out var size))
        {
            Errors.Throw(Pmem2ErrorCode.CannotReadBounds, $"({kind}) cannot read size of the namespace");
        }

        if (!TryReadULong(Path.Combine(RegionDirectory, "resource"), out var region))
        {
            Errors.ThrowErrno(LibC.ENOENT, "cannot read offset of the region");
        }

        return (offset - region, size, region);
    }

    /// <summary>Bad ranges of the namespace's block device (fsdax), relative to the namespace.</summary>
    public List<SectorRange> NamespaceBadBlocks() => ParseBadBlocks(BlockDirectory is null ? null : ReadText(Path.Combine(BlockDirectory, "badblocks")));

    /// <summary>Bad ranges of the region, relative to the region.</summary>
    public List<SectorRange> RegionBadBlocks() => ParseBadBlocks(ReadText(Path.Combine(RegionDirectory, "badblocks")));

    /// <summary>The kernel's badblocks_show format: one "sector length" pair (decimal) per line;
    /// malformed lines are skipped like libndctl's sscanf loop.</summary>
    internal static List<SectorRange> ParseBadBlocks(string? text)
    {
        var list = new List<SectorRange>();
        if (text is null)
        {
            return list;
        }

        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var fields = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length == 2 &&
                ulong.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var off) &&
                uint.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var len) && len > 0)
            {
                list.Add(new SectorRange(off, len));
            }
        }

        return list;
    }

    private static bool IsRegionName(string s) =>
        s.Length > 6 && s.StartsWith("region", StringComparison.Ordinal) && s.AsSpan(6).IndexOfAnyExceptInRange('0', '9') < 0;

    private static string? ReadText(string path)
    {
        try
        {
            Pmem2Diagnostics.SysfsRead();
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>sysfs resource ("0x..." hex) and size (decimal) attributes, read like strtoull(s, 0).</summary>
    private static bool TryReadULong(string path, out ulong value)
    {
        value = 0;
        var text = ReadText(path)?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        return text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value)
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
