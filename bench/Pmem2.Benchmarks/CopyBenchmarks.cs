using BenchmarkDotNet.Attributes;
using Pmem2.Oracle;

namespace Pmem2.Benchmarks;

/// <summary>The copy operation and flags under test.</summary>
public enum CopyOp
{
    /// <summary>memcpy with NONTEMPORAL|NODRAIN.</summary>
    MemcpyNtNoDrain,
    /// <summary>memcpy with TEMPORAL.</summary>
    MemcpyTemporal,
    /// <summary>memcpy with default flags (0).</summary>
    MemcpyDefault,
    /// <summary>memset with default flags (0).</summary>
    MemsetDefault,
}

/// <summary>
/// memcpy / memset of the map's start from a 64-byte aligned buffer: ours (Pmem2Map.MemcpyRaw /
/// MemsetRaw, the pointer-level functions pmem2_get_memcpy_fn would return) against native
/// libpmem2's memcpy_fn / memset_fn, called through a delegate.
/// </summary>
public class CopyBenchmarks
{
    private DualMap _maps = null!;
    private Pmem2Map _ours = null!;
    private NativePmem2.MemmoveFn _nativeMemcpy = null!;
    private NativePmem2.MemsetFn _nativeMemset = null!;
    private nint _oursDst;
    private nint _nativeDst;
    private nint _src;
    private nuint _len;
    private uint _flags;
    private bool _isSet;

    [ParamsSource(nameof(Sizes))]
    public int Size { get; set; }

    [ParamsSource(nameof(Ops))]
    public CopyOp Op { get; set; }

    [ParamsSource(nameof(Media))]
    public Medium Medium { get; set; }

    [ParamsSource(nameof(Grans))]
    public Gran Granularity { get; set; }

    public static IEnumerable<int> Sizes => BenchParams.Sizes([256, 4096, 65536, 1 << 20, 16 << 20]);

    public static IEnumerable<CopyOp> Ops => BenchParams.Filter("PMEM2_BENCH_OPS", Enum.GetValues<CopyOp>());

    public static IEnumerable<Medium> Media => BenchParams.Filter("PMEM2_BENCH_MEDIA", Enum.GetValues<Medium>());

    public static IEnumerable<Gran> Grans => BenchParams.Filter("PMEM2_BENCH_GRANS", Enum.GetValues<Gran>());

    [GlobalSetup]
    public void Setup()
    {
        _maps = new DualMap(Medium, Granularity, Math.Max(Size, 1 << 20));
        _ours = _maps.Ours;
        _nativeMemcpy = _maps.Native.Memcpy;
        _nativeMemset = _maps.Native.Memset;
        _oursDst = _ours.Address;
        _nativeDst = _maps.Native.Address;
        _src = _maps.Source;
        _len = (nuint)Size;
        _isSet = Op == CopyOp.MemsetDefault;
        _flags = Op switch
        {
            CopyOp.MemcpyNtNoDrain => (uint)(Pmem2MemFlags.NonTemporal | Pmem2MemFlags.NoDrain),
            CopyOp.MemcpyTemporal => (uint)Pmem2MemFlags.Temporal,
            _ => 0,
        };
    }

    [GlobalCleanup]
    public void Cleanup() => _maps.Dispose();

    [Benchmark(Baseline = true)]
    public nint Native() =>
        _isSet ? _nativeMemset(_nativeDst, 0x5A, _len, _flags) : _nativeMemcpy(_nativeDst, _src, _len, _flags);

    [Benchmark]
    public nint Ours() =>
        _isSet ? _ours.MemsetRaw(_oursDst, 0x5A, _len, (Pmem2MemFlags)_flags) : _ours.MemcpyRaw(_oursDst, _src, _len, (Pmem2MemFlags)_flags);
}

/// <summary>persist_fn latency over [map start, +Size) (no stores in between: on PAGE the pages are clean
/// after the first call, so this is the msync/flush machinery itself).</summary>
public class PersistBenchmarks
{
    private DualMap _maps = null!;
    private Pmem2Map _ours = null!;
    private NativePmem2.PersistFn _nativePersist = null!;
    private nuint _len;

    [ParamsSource(nameof(Sizes))]
    public int Size { get; set; }

    [ParamsSource(nameof(Media))]
    public Medium Medium { get; set; }

    [ParamsSource(nameof(Grans))]
    public Gran Granularity { get; set; }

    public static IEnumerable<int> Sizes => BenchParams.Sizes([64, 4096, 65536, 1 << 20]);

    public static IEnumerable<Medium> Media => CopyBenchmarks.Media;

    public static IEnumerable<Gran> Grans => CopyBenchmarks.Grans;

    [GlobalSetup]
    public void Setup()
    {
        _maps = new DualMap(Medium, Granularity, 1 << 20);
        _ours = _maps.Ours;
        _nativePersist = _maps.Native.Persist;
        _len = (nuint)Size;
    }

    [GlobalCleanup]
    public void Cleanup() => _maps.Dispose();

    [Benchmark(Baseline = true)]
    public void Native() => _nativePersist(_maps.Native.Address, _len);

    [Benchmark]
    public void Ours() => _ours.PersistRaw(_ours.Address, _len);
}

/// <summary>
/// The price of calling native code through a delegate: native PAGE drain_fn (an empty C function)
/// through the same delegate path as the native rows above, against our PAGE DrainRaw (also empty).
/// </summary>
public class CallOverheadBenchmarks
{
    private DualMap _maps = null!;
    private NativePmem2.DrainFn _nativeDrain = null!;
    private Pmem2Map _ours = null!;

    [GlobalSetup]
    public void Setup()
    {
        _maps = new DualMap(Medium.Shm, Gran.Page, 1 << 20);
        _nativeDrain = _maps.Native.Drain;
        _ours = _maps.Ours;
    }

    [GlobalCleanup]
    public void Cleanup() => _maps.Dispose();

    [Benchmark(Baseline = true)]
    public void NativeDrainNoop() => _nativeDrain();

    [Benchmark]
    public void OursDrainNoop() => _ours.DrainRaw();
}
