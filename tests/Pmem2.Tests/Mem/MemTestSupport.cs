using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;
using Pmem2.Internal.Mem;

namespace Pmem2.Tests.Mem;

/// <summary>A pinned, 64-byte aligned byte buffer with a stable address (no unsafe code needed).</summary>
internal sealed class PinnedBuffer
{
    private readonly byte[] _array;
    private readonly int _offset;

    public PinnedBuffer(int length)
    {
        _array = GC.AllocateUninitializedArray<byte>(length + 64, pinned: true);
        nint baseAddress = Marshal.UnsafeAddrOfPinnedArrayElement(_array, 0);
        _offset = (int)((64 - (baseAddress & 63)) & 63);
        Length = length;
        Address = baseAddress + _offset;
    }

    public int Length { get; }

    public nint Address { get; }

    public Span<byte> Span => _array.AsSpan(_offset, Length);
}

/// <summary>Engines, flag sets and modes of the libpmem2 mem tests.</summary>
public static class MemMatrix
{
    internal const string Avx512SkipReason =
        "This CPU lacks AVX-512F (Avx512F.IsSupported is false), so the avx512f engine cannot run here; its loops run over the SSE2 model of its registers instead (engine avx512f-model, same tests).";

    /// <summary>The flag sets of memmove_common.c's Flags[].</summary>
    public static readonly uint[] FlagSets =
    [
        0,
        (uint)Pmem2MemFlags.NoDrain,
        (uint)Pmem2MemFlags.NonTemporal,
        (uint)Pmem2MemFlags.Temporal,
        (uint)(Pmem2MemFlags.NonTemporal | Pmem2MemFlags.Temporal),
        (uint)(Pmem2MemFlags.NonTemporal | Pmem2MemFlags.NoDrain),
        (uint)Pmem2MemFlags.WriteCombining,
        (uint)Pmem2MemFlags.WriteBack,
        (uint)Pmem2MemFlags.NoFlush,
        63,
    ];

    /// <summary>Every engine the CPU can run except avx512f (which has its own, skippable tests).</summary>
    public static IEnumerable<string> Engines =>
        MemTestAccess.AllEngines.Where(e => e.IsSupported && e.Name != "avx512f").Select(e => e.ToString());

    public static TheoryData<string, uint> EngineFlags()
    {
        var data = new TheoryData<string, uint>();
        foreach (var e in Engines)
        {
            foreach (var f in FlagSets)
            {
                data.Add(e, f);
            }
        }

        return data;
    }

    public static TheoryData<string, uint> Avx512Flags()
    {
        var data = new TheoryData<string, uint>();
        foreach (var f in FlagSets)
        {
            data.Add("avx512f", f);
        }

        return data;
    }

    public static TheoryData<string> EngineIds()
    {
        var data = new TheoryData<string>();
        foreach (var e in Engines)
        {
            data.Add(e);
        }

        return data;
    }
}

/// <summary>A theory that runs only where the CPU has AVX-512F, and says why it is skipped otherwise.</summary>
public sealed class Avx512TheoryAttribute : TheoryAttribute
{
    public Avx512TheoryAttribute()
    {
        if (!Avx512F.IsSupported)
        {
            Skip = MemMatrix.Avx512SkipReason;
        }
    }
}

/// <summary>Calls through the dispatcher with a forced engine.</summary>
internal sealed class EngineRunner(string engineId)
{
    public MemEngine Engine { get; } = MemTestAccess.Find(engineId);

    public void Move(nint dst, nint src, int len, uint flags, bool eadr, nuint threshold = 256, bool fenceAfterNt = false) =>
        MemTestAccess.Memmove(Engine, threshold, dst, src, (nuint)len, (Pmem2MemFlags)flags, eadr, fenceAfterNt);

    public void Set(nint dst, byte value, int len, uint flags, bool eadr, nuint threshold = 256, bool fenceAfterNt = false) =>
        MemTestAccess.Memset(Engine, threshold, dst, value, (nuint)len, (Pmem2MemFlags)flags, eadr, fenceAfterNt);
}
