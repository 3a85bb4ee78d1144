using System.Runtime.CompilerServices;

namespace Pmem2.Internal.Mem;

/// <summary>What one thread's copy calls did while a <see cref="MemTrace"/> recording was active.</summary>
internal sealed class MemTraceRecorder
{
    /// <summary>Path chosen per call, with its length.</summary>
    public List<(MemPath Path, nuint Length)> Paths { get; } = [];

    /// <summary>Ranges passed to the recording flusher (<see cref="MemTrace.RecordFlush"/>).</summary>
    public List<(nint Address, nuint Length)> Flushes { get; } = [];

    /// <summary>sfences issued by the dispatcher after non-temporal stores.</summary>
    public int Fences { get; set; }

    /// <summary>Stores narrower than 8 bytes issued by the small-copy helpers.</summary>
    public int NarrowStores { get; set; }

    public void Clear()
    {
        Paths.Clear();
        Flushes.Clear();
        Fences = 0;
        NarrowStores = 0;
    }
}

/// <summary>
/// Internal diagnostic hook (the mem_ext test's view of which variant ran). Off by default: the
/// hot paths test one static bool. Recording is per thread, so parallel users are not mixed in.
/// </summary>
internal static unsafe class MemTrace
{
    private static bool s_enabled;

    [ThreadStatic]
    private static MemTraceRecorder? t_recorder;

    public static bool Enabled
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => s_enabled;
    }

    /// <summary>Starts recording on the calling thread.</summary>
    public static MemTraceRecorder Begin()
    {
        var r = new MemTraceRecorder();
        t_recorder = r;
        s_enabled = true;
        return r;
    }

    /// <summary>Stops recording on the calling thread.</summary>
    public static void End() => t_recorder = null;

    /// <summary>A flush routine for <see cref="MemFlusher"/> that only records the range.</summary>
    public static void RecordFlush(byte* addr, nuint len) => t_recorder?.Flushes.Add(((nint)addr, len));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void NarrowStore()
    {
        if (s_enabled)
        {
            var r = t_recorder;
            if (r is not null)
            {
                r.NarrowStores++;
            }
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Path(MemPath path, nuint len) => t_recorder?.Paths.Add((path, len));

    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Fence()
    {
        var r = t_recorder;
        if (r is not null)
        {
            r.Fences++;
        }
    }
}
