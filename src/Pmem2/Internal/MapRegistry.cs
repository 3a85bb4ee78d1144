namespace Pmem2.Internal;

/// <summary>
/// The process-wide registry of live mappings (libpmem2's interval tree in map.c L158-247 behind a
/// rwlock). Registered ranges never overlap, so a list sorted by start address is also sorted by end
/// address and one binary search finds the first range that can overlap a query.
/// PAGE persist walks it (msync only what registered maps cover); <see cref="Register"/> refuses
/// overlaps with MAP_EXISTS, like pmem2_map_from_existing.
/// </summary>
internal static class MapRegistry
{
    private static readonly ReaderWriterLockSlim s_lock = new(LockRecursionPolicy.NoRecursion);
    private static readonly List<Entry> s_entries = [];

    /// <summary>One registered range [Start, End) and its owner.</summary>
    internal readonly record struct Entry(nuint Start, nuint End, object Owner);

    /// <summary>Adds [start, start+length); throws MAP_EXISTS (with pmem2_map_from_existing's message, the
    /// only libpmem2 call where an overlap can happen) when it overlaps a registered map.</summary>
    public static void Register(nuint start, nuint length, object owner)
    {
        var end = start + length;
        s_lock.EnterWriteLock();
        try
        {
            var i = FirstEndingAfter(start);
            if (i < s_entries.Count && s_entries[i].Start < end)
            {
                Errors.Throw(Pmem2ErrorCode.MapExists,
                    $"Provided mapping(addr {Errors.Pointer((nint)start)} len {length}) is already registered by libpmem2");
            }

            s_entries.Insert(i, new Entry(start, end, owner));
        }
        finally
        {
            s_lock.ExitWriteLock();
        }
    }

    /// <summary>Removes the entry of <paramref name="owner"/> at <paramref name="start"/>; false when absent
    /// (libpmem2: MAPPING_NOT_FOUND).</summary>
    public static bool Unregister(nuint start, object owner)
    {
        s_lock.EnterWriteLock();
        try
        {
            var i = FirstEndingAfter(start);
            if (i < s_entries.Count && s_entries[i].Start == start && ReferenceEquals(s_entries[i].Owner, owner))
            {
                s_entries.RemoveAt(i);
                return true;
            }

            return false;
        }
        finally
        {
            s_lock.ExitWriteLock();
        }
    }

    /// <summary>Number of registered maps (diagnostics and tests).</summary>
    public static int Count
    {
        get
        {
            s_lock.EnterReadLock();
            try
            {
                return s_entries.Count;
            }
            finally
            {
                s_lock.ExitReadLock();
            }
        }
    }

    /// <summary>Whether any registered map overlaps [start, start+length).</summary>
    public static bool Overlaps(nuint start, nuint length)
    {
        s_lock.EnterReadLock();
        try
        {
            var i = FirstEndingAfter(start);
            return i < s_entries.Count && s_entries[i].Start < start + length;
        }
        finally
        {
            s_lock.ExitReadLock();
        }
    }

    /// <summary>Writers waiting for the lock (tests: proves a walk does not hold the lock across its actions).</summary>
    internal static int WaitingWriters => s_lock.WaitingWriteCount;

    /// <summary>
    /// Calls <paramref name="action"/> for the piece of every registered map that overlaps
    /// [start, end), in address order. The pieces are collected under the read lock, each owner that
    /// is a <see cref="System.Runtime.InteropServices.SafeHandle"/> (a <see cref="Pmem2MappingHandle"/>)
    /// gets a reference (so it cannot be unmapped until the action is done; a handle already closed is
    /// skipped, it is being unmapped), and the actions run <b>after the lock is released</b>: an msync
    /// of unbounded length must never hold a lock that every other map's register, unregister and
    /// persist needs (a waiting writer would block all readers behind it).
    /// </summary>
    public static void ForEachCovered<TState>(nuint start, nuint end, TState state, Action<nuint, nuint, TState> action)
    {
        // The first piece in locals, further ones (a range spanning several maps: rare) in a list made
        // only then: a persist of one map allocates nothing.
        var count = 0;
        Piece first = default;
        List<Piece>? more = null;
        s_lock.EnterReadLock();
        try
        {
            for (var i = FirstEndingAfter(start); i < s_entries.Count && s_entries[i].Start < end; i++)
            {
                var e = s_entries[i];
                var owner = e.Owner as System.Runtime.InteropServices.SafeHandle;
                if (owner is not null)
                {
                    var added = false;
                    try
                    {
                        owner.DangerousAddRef(ref added);
                    }
                    catch (ObjectDisposedException)
                    {
                        continue;
                    }

                    if (!added)
                    {
                        continue;
                    }
                }

                var from = Math.Max(start, e.Start);
                var to = Math.Min(end, e.End);
                var piece = new Piece(from, to - from, owner);
                if (count == 0)
                {
                    first = piece;
                }
                else
                {
                    (more ??= []).Add(piece);
                }

                count++;
            }
        }
        finally
        {
            s_lock.ExitReadLock();
        }

        var next = 0;
        try
        {
            for (; next < count; next++)
            {
                var piece = next == 0 ? first : more![next - 1];
                try
                {
                    action(piece.From, piece.Length, state);
                }
                finally
                {
                    piece.Owner?.DangerousRelease();
                }
            }
        }
        finally
        {
            // An action threw: release the references of the pieces it did not reach.
            for (next++; next < count; next++)
            {
                more![next - 1].Owner?.DangerousRelease();
            }
        }
    }

    private readonly record struct Piece(nuint From, nuint Length, System.Runtime.InteropServices.SafeHandle? Owner);

    /// <summary>Index of the first entry whose End is greater than <paramref name="address"/>.</summary>
    private static int FirstEndingAfter(nuint address)
    {
        int lo = 0, hi = s_entries.Count;
        while (lo < hi)
        {
            var mid = (lo + hi) >>> 1;
            if (s_entries[mid].End <= address)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }
}
