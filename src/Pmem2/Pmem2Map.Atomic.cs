namespace Pmem2;

/// <summary>8-byte atomic stores, compare-and-swap and fetch-and-add on a mapping, each followed by a persist of the 8 bytes.</summary>
public sealed unsafe partial class Pmem2Map
{
    /// <summary>
    /// Atomically stores <paramref name="value"/> at the 8-byte aligned <paramref name="offset"/>
    /// (one <c>mov</c>, so readers of the mapping see the old or the new value, never a mix), then
    /// persists those 8 bytes (cache-line flush + drain, or msync at PAGE).
    /// </summary>
    public void AtomicStore64(ulong offset, long value)
    {
        var target = CheckAtomic(offset);
        using (AcquireHandle())
        {
            Volatile.Write(ref *target, value);
            PersistRaw(_address + offset, sizeof(long));
        }
    }

    /// <summary>Atomically reads the 8 bytes at the aligned <paramref name="offset"/>.</summary>
    public long AtomicLoad64(ulong offset)
    {
        CheckRange(offset, sizeof(long));
        if ((offset & 7) != 0)
        {
            throw new ArgumentException($"offset {offset} is not 8-byte aligned.", nameof(offset));
        }

        RequireAccess(write: false);
        using (AcquireHandle())
        {
            return Volatile.Read(ref *(long*)(_address + offset));
        }
    }

    /// <summary>
    /// Atomically replaces the 8 bytes at the aligned <paramref name="offset"/> with <paramref name="value"/>
    /// when they equal <paramref name="comparand"/> (<c>lock cmpxchg</c>); returns the value found. The 8
    /// bytes are persisted whether or not the swap happened, so a value this call observed is durable too.
    /// </summary>
    public long CompareExchange64(ulong offset, long value, long comparand)
    {
        var target = CheckAtomic(offset);
        using (AcquireHandle())
        {
            var found = Interlocked.CompareExchange(ref *target, value, comparand);
            PersistRaw(_address + offset, sizeof(long));
            return found;
        }
    }

    /// <summary>
    /// Atomically adds <paramref name="delta"/> to the 8 bytes at the aligned <paramref name="offset"/>
    /// (<c>lock xadd</c>, wrapping), then persists them; returns the value before the add.
    /// </summary>
    public long FetchAdd64(ulong offset, long delta)
    {
        var target = CheckAtomic(offset);
        using (AcquireHandle())
        {
            var after = Interlocked.Add(ref *target, delta);
            PersistRaw(_address + offset, sizeof(long));
            return unchecked(after - delta);
        }
    }

    private long* CheckAtomic(ulong offset)
    {
        CheckRange(offset, sizeof(long));
        if ((offset & 7) != 0)
        {
            throw new ArgumentException($"offset {offset} is not 8-byte aligned.", nameof(offset));
        }

        RequireAccess(write: true);
        RequireFlushable();
        return (long*)(_address + offset);
    }
}
