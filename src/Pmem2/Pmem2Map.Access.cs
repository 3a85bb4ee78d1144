namespace Pmem2;

/// <summary>
/// The safe ways to work on mapped memory in place: offset-to-offset copies inside the map, and
/// lease-scoped views (the view exists only inside a callback that holds a reference on the mapping,
/// so a concurrent <see cref="Dispose"/> unmaps only after the callback returns). <see cref="GetSpan()"/>
/// stays for experts who manage the lifetime themselves.
/// </summary>
public sealed unsafe partial class Pmem2Map
{
    /// <summary>
    /// pmem2_memcpy_fn from one range of the mapping to another: bounds-checked, both ranges inside the
    /// map, any size (no 2 GiB span limit). As in libpmem2, whose memcpy_fn is its memmove_fn, overlapping
    /// ranges are copied correctly; persistence follows <paramref name="flags"/> and the granularity
    /// exactly like <see cref="Memcpy(ulong, ReadOnlySpan{byte}, Pmem2MemFlags)"/>.
    /// </summary>
    public void Memcpy(ulong destinationOffset, ulong sourceOffset, ulong length, Pmem2MemFlags flags = Pmem2MemFlags.None)
    {
        CheckRange(destinationOffset, length);
        CheckRange(sourceOffset, length);
        RequireAccess(write: true);
        using (AcquireHandle())
        {
            MemcpyRaw(_address + destinationOffset, _address + sourceOffset, (nuint)length, flags);
        }
    }

    /// <summary>
    /// Runs <paramref name="update"/> on a writable view of <c>[offset, offset+length)</c> while holding a
    /// reference on the mapping, then (unless <paramref name="persist"/> is false) persists that range before releasing the reference.
    /// The view must not escape the callback. This is the recommended way to write in place; prefer it
    /// to <see cref="GetSpan()"/>.
    /// </summary>
    public void Update(ulong offset, int length, Pmem2SpanAction update, bool persist = true)
    {
        ArgumentNullException.ThrowIfNull(update);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        CheckRange(offset, (ulong)length);
        RequireAccess(write: true);
        using (AcquireHandle())
        {
            update(new Span<byte>(_address + offset, length));
            if (persist)
            {
                Persist(offset, (ulong)length);
            }
        }
    }

    /// <summary><see cref="Update(ulong, int, Pmem2SpanAction, bool)"/> with a caller state (no closure allocation).</summary>
    public void Update<TState>(ulong offset, int length, TState state, Pmem2SpanAction<TState> update, bool persist = true)
        where TState : allows ref struct
    {
        ArgumentNullException.ThrowIfNull(update);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        CheckRange(offset, (ulong)length);
        RequireAccess(write: true);
        using (AcquireHandle())
        {
            update(new Span<byte>(_address + offset, length), state);
            if (persist)
            {
                Persist(offset, (ulong)length);
            }
        }
    }

    /// <summary>
    /// Runs <paramref name="read"/> on a read-only view of <c>[offset, offset+length)</c> while holding a
    /// reference on the mapping and returns its result. The view must not escape the callback.
    /// </summary>
    public TResult View<TResult>(ulong offset, int length, Pmem2ReadOnlySpanFunc<TResult> read)
    {
        ArgumentNullException.ThrowIfNull(read);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        CheckRange(offset, (ulong)length);
        RequireAccess(write: false);
        using (AcquireHandle())
        {
            return read(new ReadOnlySpan<byte>(_address + offset, length));
        }
    }
}
