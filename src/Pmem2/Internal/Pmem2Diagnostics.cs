namespace Pmem2.Internal;

/// <summary>
/// Counting seam for tests (libpmem2's pmem2_persist / pmem2_deep_flush suites mock msync, flush and
/// fence and count the calls). Here nothing is mocked: the real code paths make the real msync,
/// CPU flush and sfence calls and, when a counting scope is open on the current thread, also bump
/// these counters. Outside a scope the cost is one thread-static read per operation.
/// </summary>
internal static class Pmem2Diagnostics
{
    [ThreadStatic]
    private static Counters? t_counters;

    /// <summary>Starts counting the operations this thread performs until the returned scope is disposed.</summary>
    public static Counters BeginCounting()
    {
        var c = new Counters(t_counters);
        t_counters = c;
        return c;
    }

    public static void Msync() { if (t_counters is { } c) { c.Msync++; } }

    public static void Flush() { if (t_counters is { } c) { c.Flush++; } }

    public static void Fence() { if (t_counters is { } c) { c.Fence++; } }

    public static void SysfsRead() { if (t_counters is { } c) { c.SysfsRead++; } }

    public static void SysfsWrite() { if (t_counters is { } c) { c.SysfsWrite++; } }

    /// <summary>Counts of one scope: msync calls, CPU range flushes (one per flushed range), store fences,
    /// and device-DAX deep_flush sysfs reads and writes.</summary>
    public sealed class Counters : IDisposable
    {
        private readonly Counters? _previous;

        internal Counters(Counters? previous) => _previous = previous;

        public int Msync { get; internal set; }

        public int Flush { get; internal set; }

        public int Fence { get; internal set; }

        public int SysfsRead { get; internal set; }

        public int SysfsWrite { get; internal set; }

        /// <summary>(msync, flush, fence) as in libpmem2's pmem2_persist test tables.</summary>
        public (int Msync, int Flush, int Fence) Triple => (Msync, Flush, Fence);

        public void Reset() => Msync = Flush = Fence = SysfsRead = SysfsWrite = 0;

        public void Dispose()
        {
            if (ReferenceEquals(t_counters, this))
            {
                t_counters = _previous;
            }
        }
    }
}
