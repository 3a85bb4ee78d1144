namespace Pmem2;

/// <summary>
/// A mapping (struct pmem2_map). Disposing unmaps exactly once; every access through this type is
/// bounds-checked and holds a reference on <see cref="Handle"/>, so none can outlive the unmap.
/// CONTRACT STUB: the public surface agreed between the engine and its users.
/// </summary>
public sealed partial class Pmem2Map : IDisposable
{
    private Pmem2Map() { }

    /// <summary>pmem2_map_new.</summary>
    public static Pmem2Map Create(Pmem2Config config, Pmem2Source source) => throw new NotImplementedException();

    /// <summary>pmem2_map_get_address.</summary>
    public nint Address => throw new NotImplementedException();

    /// <summary>pmem2_map_get_size: the content length (not page-rounded).</summary>
    public ulong Size => throw new NotImplementedException();

    /// <summary>pmem2_map_get_store_granularity: the effective granularity.</summary>
    public Pmem2Granularity StoreGranularity => throw new NotImplementedException();

    /// <summary>Whether the MAP_SHARED_VALIDATE|MAP_SYNC mapping succeeded (the file is on DAX).</summary>
    public bool IsMapSync => throw new NotImplementedException();

    /// <summary>The SafeBuffer-derived handle that owns the mapping.</summary>
    public Pmem2MappingHandle Handle => throw new NotImplementedException();

    /// <summary>Whether the map has been disposed.</summary>
    public bool IsDisposed => throw new NotImplementedException();

    /// <summary>A view of the whole mapping. Valid only until the map is disposed; prefer the
    /// bounds-checked methods below when the map may be disposed concurrently.</summary>
    public Span<byte> GetSpan() => throw new NotImplementedException();

    /// <summary>Copies mapping bytes [offset, offset+destination.Length) into destination.</summary>
    public void Read(ulong offset, Span<byte> destination) => throw new NotImplementedException();

    /// <summary>pmem2_memcpy_fn into the mapping at <paramref name="offset"/>.</summary>
    public void Memcpy(ulong offset, ReadOnlySpan<byte> source, Pmem2MemFlags flags = Pmem2MemFlags.None) => throw new NotImplementedException();

    /// <summary>pmem2_memmove_fn within the mapping (overlap-safe).</summary>
    public void Memmove(ulong destinationOffset, ulong sourceOffset, ulong length, Pmem2MemFlags flags = Pmem2MemFlags.None) => throw new NotImplementedException();

    /// <summary>pmem2_memset_fn within the mapping.</summary>
    public void Memset(ulong offset, byte value, ulong length, Pmem2MemFlags flags = Pmem2MemFlags.None) => throw new NotImplementedException();

    /// <summary>pmem2_persist_fn over a range of the mapping.</summary>
    public void Persist(ulong offset, ulong length) => throw new NotImplementedException();

    /// <summary>pmem2_flush_fn over a range of the mapping.</summary>
    public void Flush(ulong offset, ulong length) => throw new NotImplementedException();

    /// <summary>pmem2_drain_fn.</summary>
    public void Drain() => throw new NotImplementedException();

    /// <summary>pmem2_deep_flush over a range of the mapping (DEEP_FLUSH_RANGE when outside).</summary>
    public void DeepFlush(ulong offset, ulong length) => throw new NotImplementedException();

    /// <summary>
    /// Extension beyond libpmem2, for bulk streams: a non-temporal copy whose persistence is deferred.
    /// On CACHE_LINE and BYTE maps it is Memcpy with NONTEMPORAL|NODRAIN; on PAGE maps the msync is
    /// deferred too. Call <see cref="CompleteDeferred"/> over the written range before acknowledging.
    /// </summary>
    public void CopyNonTemporalDeferred(ulong offset, ReadOnlySpan<byte> source) => throw new NotImplementedException();

    /// <summary>Makes deferred copies over [offset, offset+length) persistent: drain on CACHE_LINE and BYTE,
    /// msync of the page-aligned range on PAGE.</summary>
    public void CompleteDeferred(ulong offset, ulong length) => throw new NotImplementedException();

    /// <summary>pmem2_map_delete.</summary>
    public void Dispose() => throw new NotImplementedException();
}
