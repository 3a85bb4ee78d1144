using System.Globalization;
using Pmem2.Internal.Interop;

namespace Pmem2.Internal;

/// <summary>
/// NVDIMM region facts from sysfs, in place of the ndctl library libpmem2 links (numa_ndctl.c,
/// usc_ndctl.c, region_namespace_ndctl.c). The region of a source is the "regionN" component of the
/// resolved sysfs path of its device: the block device holding a regular file (st_dev), or the device
/// DAX itself (st_rdev). Its DIMMs are listed by the region's mappingN attributes ("nmemX,offset,
/// length,position"); each DIMM exposes nfit/dirty_shutdown and nfit/id.
/// </summary>
internal static class NdRegion
{
    /// <summary>The region name ("region0") of a file source, or null when the source is not on an NVDIMM region.</summary>
    public static string? Find(Pmem2Source source)
    {
        var (kind, dev) = source.Type == Pmem2SourceType.DeviceDax ? ("char", source.DeviceNumber) : ("block", source.FileSystemDevice);
        var path = Path.Combine(DeviceDax.SysRoot, "dev", kind, $"{LibC.Major(dev)}:{LibC.Minor(dev)}");
        var real = LibC.RealPath(path, out _);
        return real?.Split('/').LastOrDefault(IsRegionName);
    }

    public static string RegionDirectory(string region) => Path.Combine(DeviceDax.SysRoot, "bus", "nd", "devices", region);

    /// <summary>ndctl_region_get_numa_node: the region's numa_node attribute (-1 when unknown).</summary>
    public static int NumaNode(string region) =>
        TryReadLong(Path.Combine(RegionDirectory(region), "numa_node"), out var node) ? (int)node : -1;

    /// <summary>The DIMMs ("nmemX") backing the region, in mapping order.</summary>
    public static List<string> Dimms(string region)
    {
        var dir = RegionDirectory(region);
        var dimms = new List<string>();
        if (!TryReadLong(Path.Combine(dir, "mappings"), out var count))
        {
            return dimms;
        }

        for (var i = 0; i < count; i++)
        {
            var text = TryReadText(Path.Combine(dir, $"mapping{i}"));
            var name = text?.Split(',')[0].Trim();
            if (!string.IsNullOrEmpty(name))
            {
                dimms.Add(name);
            }
        }

        return dimms;
    }

    /// <summary>ndctl_dimm_get_dirty_shutdown: negative when the DIMM does not report it.</summary>
    public static long DirtyShutdown(string dimm) =>
        TryReadLong(Path.Combine(DeviceDax.SysRoot, "bus", "nd", "devices", dimm, "nfit", "dirty_shutdown"), out var v) ? v : -1;

    /// <summary>ndctl_dimm_get_unique_id: null when the DIMM has none.</summary>
    public static string? UniqueId(string dimm) =>
        TryReadText(Path.Combine(DeviceDax.SysRoot, "bus", "nd", "devices", dimm, "nfit", "id"))?.TrimEnd('\n');

    private static bool IsRegionName(string s) =>
        s.Length > 6 && s.StartsWith("region", StringComparison.Ordinal) && s.AsSpan(6).IndexOfAnyExceptInRange('0', '9') < 0;

    private static string? TryReadText(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool TryReadLong(string path, out long value)
    {
        value = 0;
        var text = TryReadText(path);
        return text is not null && long.TryParse(text.AsSpan().Trim(), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value);
    }
}
