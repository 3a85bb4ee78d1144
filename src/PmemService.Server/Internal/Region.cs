using Pmem2;

namespace PmemService.Server.Internal;

/// <summary>
/// One region's state. <see cref="Gate"/> serializes the slow transitions (create, map, unmap,
/// delete); the monitor of this object guards the counters, which the data path touches on every call.
/// </summary>
internal sealed class Region
{
    public Region(string name, string path)
    {
        Name = name;
        Path = path;
    }

    public string Name { get; }

    public string Path { get; }

    /// <summary>Serializes create / map / unmap / delete of this region.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    // The fields below are guarded by lock(this).

    /// <summary>The one shared mapping, or null.</summary>
    public RegionMapping? Mapping;

    /// <summary>MapRegion references.</summary>
    public int References;

    /// <summary>Calls currently using <see cref="Mapping"/>; it is closed only when both counts are 0.</summary>
    public int Leases;

    /// <summary>Set once the file is deleted; this object is then stale.</summary>
    public volatile bool Deleted;
}

/// <summary>A pmem2 source + map pair (the source owns the file handle, the map the mapping).</summary>
internal sealed class RegionMapping : IDisposable
{
    public RegionMapping(Pmem2Source source, Pmem2Map map, Pmem2Granularity requested)
    {
        Source = source;
        Map = map;
        Requested = requested;
        Size = map.Size;
        Effective = map.StoreGranularity;
        MapSync = map.IsMapSync;
        EffectiveName = GranularityConvert.Name(Effective);
    }

    public Pmem2Source Source { get; }

    public Pmem2Map Map { get; }

    public Pmem2Granularity Requested { get; }

    public Pmem2Granularity Effective { get; }

    public string EffectiveName { get; }

    public bool MapSync { get; }

    public ulong Size { get; }

    public void Dispose()
    {
        Map.Dispose();
        Source.Dispose();
    }
}

/// <summary>
/// A call's hold on a mapped region: while any lease is open the mapping stays mapped even if the
/// last MapRegion reference goes (the unmap then happens when the last lease is disposed).
/// </summary>
internal sealed class RegionLease : IDisposable
{
    private readonly RegionManager _manager;
    private int _disposed;

    public RegionLease(RegionManager manager, Region region, RegionMapping mapping)
    {
        _manager = manager;
        Region = region;
        Mapping = mapping;
    }

    public Region Region { get; }

    public RegionMapping Mapping { get; }

    public Pmem2Map Map => Mapping.Map;

    public string Name => Region.Name;

    public ulong Size => Mapping.Size;

    /// <summary>Throws REGION_DELETED when the region was force-deleted since the lease was taken.</summary>
    public void ThrowIfDeleted()
    {
        if (Region.Deleted)
        {
            throw PmemServiceException.Deleted(Region.Name);
        }
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _manager.Release(Region);
        }
    }
}
