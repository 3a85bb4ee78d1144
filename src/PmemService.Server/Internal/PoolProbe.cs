using Pmem2;

namespace PmemService.Server.Internal;

/// <summary>What the pool's filesystem gives: effective granularity and whether MAP_SYNC works.</summary>
/// <param name="Granularity">Finest granularity a region in the pool gets.</param>
/// <param name="MapSync">Whether MAP_SYNC mappings succeed (DAX).</param>
/// <param name="Reason">Why CACHE_LINE is unavailable, or null when it is.</param>
internal sealed record PoolProbeResult(Pmem2Granularity Granularity, bool MapSync, string? Reason);

/// <summary>
/// Start-up probe: creates a small fully allocated temp file in the pool and maps it requiring
/// CACHE_LINE, which succeeds only with MAP_SYNC (DAX) or eADR; otherwise maps it at PAGE.
/// </summary>
internal static class PoolProbe
{
    private const int ProbeSize = 4096;

    public static PoolProbeResult Run(string poolPath)
    {
        var path = Path.Combine(poolPath, $"{RegionManager.ProbePrefix}{Guid.NewGuid():N}");
        try
        {
            using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, FileOptions.None, preallocationSize: ProbeSize))
            {
                RandomAccess.SetLength(handle, ProbeSize);
            }

            using var source = Pmem2Source.Open(path);
            try
            {
                using var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.CacheLine }, source);
                return new PoolProbeResult(map.StoreGranularity, map.IsMapSync, null);
            }
            catch (Pmem2Exception e) when (e.Code == Pmem2ErrorCode.GranularityNotSupported)
            {
                using var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page }, source);
                return new PoolProbeResult(map.StoreGranularity, map.IsMapSync, e.Message);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
