using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.X86;

namespace Pmem2.Internal.Mem;

/// <summary>
/// One copy engine (libpmem2's per-ISA function sets: memmove_movnt_* / memmove_mov_* /
/// memset_movnt_* / memset_mov_*). The flush pointer is the flush kind: null for "empty" (eADR)
/// and "noflush"; otherwise the CPU flush of the map. Engines never fence after their stores;
/// <see cref="MemOps"/> decides the barrier.
/// </summary>
internal abstract unsafe class MemEngine
{
    /// <summary>Name reported by <see cref="MemOps.EngineName"/>.</summary>
    public abstract string Name { get; }

    /// <summary>Whether the CPU can run this engine.</summary>
    public abstract bool IsSupported { get; }

    /// <summary>False for the generic and libc fallbacks, which have no non-temporal path.</summary>
    public virtual bool HasNonTemporal => true;

    /// <summary>Whether the SSE2/AVX loops fence every 768 bytes (PMEM_WC_WORKAROUND).</summary>
    public virtual bool WcBarrier => false;

    public abstract void MoveNt(byte* dst, byte* src, nuint len, delegate*<byte*, nuint, void> flush);

    public abstract void MoveT(byte* dst, byte* src, nuint len, delegate*<byte*, nuint, void> flush);

    public abstract void SetNt(byte* dst, byte value, nuint len, delegate*<byte*, nuint, void> flush);

    public abstract void SetT(byte* dst, byte value, nuint len, delegate*<byte*, nuint, void> flush);

    public override string ToString() => WcBarrier ? Name + "+wc" : Name;

    // ----------------------------------------------------------------------------------------
    // instances
    // ----------------------------------------------------------------------------------------

    public static MemEngine Sse2(bool wcBarrier) => new SimdEngine<Sse2Ops>("sse2", System.Runtime.Intrinsics.X86.Sse2.X64.IsSupported, wcBarrier);

    public static MemEngine Avx(bool wcBarrier) => new SimdEngine<AvxOps>("avx", System.Runtime.Intrinsics.X86.Avx.IsSupported, wcBarrier);

    /// <summary>AVX-512F never uses the WC workaround (memcpy_memset.h).</summary>
    public static MemEngine Avx512F() => new SimdEngine<Avx512Ops>("avx512f", System.Runtime.Intrinsics.X86.Avx512F.IsSupported, wcBarrier: false);

    public static readonly MemEngine Generic = new GenericEngine();

    public static readonly MemEngine Libc = new LibcEngine();
}

/// <summary>SSE2 / AVX / AVX-512F engine over the shared generic loops.</summary>
internal sealed unsafe class SimdEngine<T> : MemEngine
    where T : struct, IVecOps, ISetOps<T>
{
    private readonly bool _wc;

    public SimdEngine(string name, bool supported, bool wcBarrier)
    {
        Name = name;
        IsSupported = supported;
        _wc = wcBarrier;
    }

    public override string Name { get; }

    public override bool IsSupported { get; }

    public override bool WcBarrier => _wc;

    public override void MoveNt(byte* dst, byte* src, nuint len, delegate*<byte*, nuint, void> flush) =>
        VecLoops.MoveNt<T>(dst, src, len, flush, _wc);

    public override void MoveT(byte* dst, byte* src, nuint len, delegate*<byte*, nuint, void> flush)
    {
        // AVX with the CPU flush: forward copies past one line take the fused copy + flush loop
        // (one unmanaged call for the 256-byte blocks instead of one per block).
        if (typeof(T) == typeof(AvxOps) && len > 64 && (nuint)(dst - src) >= len && Flush.FusedCopy.Replaces(flush))
        {
            Flush.FusedCopy.MoveTFw(dst, src, len);
            return;
        }

        VecLoops.MoveT<T>(dst, src, len, flush);
    }

    public override void SetNt(byte* dst, byte value, nuint len, delegate*<byte*, nuint, void> flush) =>
        VecLoops.SetNt<T>(dst, value, len, flush, _wc);

    public override void SetT(byte* dst, byte value, nuint len, delegate*<byte*, nuint, void> flush) =>
        VecLoops.SetT<T>(dst, value, len, flush);
}

/// <summary>
/// PMEM_NO_MOVNT=1 (memops_generic.c): 8-byte stores once the destination is 8-byte aligned,
/// a CPU flush per chunk. Every store is at least 8 bytes wide when dst and len are 8-aligned.
/// </summary>
internal sealed unsafe class GenericEngine : MemEngine
{
    private const int Chunk = 1024;

    public override string Name => "generic";

    public override bool IsSupported => true;

    public override bool HasNonTemporal => false;

    public override void MoveNt(byte* dst, byte* src, nuint len, delegate*<byte*, nuint, void> flush) =>
        MoveT(dst, src, len, flush);

    public override void SetNt(byte* dst, byte value, nuint len, delegate*<byte*, nuint, void> flush) =>
        SetT(dst, value, len, flush);

    public override void MoveT(byte* dst, byte* src, nuint len, delegate*<byte*, nuint, void> flush)
    {
        if ((nuint)(dst - src) >= len)
        {
            byte* d = dst;
            byte* s = src;
            byte* end = dst + len;
            byte* pending = d;
            while (d < end && ((nuint)d & 7) != 0)
            {
                MemTrace.NarrowStore();
                *d++ = *s++;
            }

            while ((nuint)(end - d) >= 8)
            {
                Unsafe.WriteUnaligned(d, Unsafe.ReadUnaligned<ulong>(s));
                d += 8;
                s += 8;
                if (flush != null && (nuint)(d - pending) >= Chunk)
                {
                    flush(pending, (nuint)(d - pending));
                    pending = d;
                }
            }

            while (d < end)
            {
                MemTrace.NarrowStore();
                *d++ = *s++;
            }

            if (flush != null && d != pending)
            {
                flush(pending, (nuint)(d - pending));
            }
        }
        else
        {
            byte* d = dst + len;
            byte* s = src + len;
            byte* pending = d;
            while (d > dst && ((nuint)d & 7) != 0)
            {
                MemTrace.NarrowStore();
                *--d = *--s;
            }

            while ((nuint)(d - dst) >= 8)
            {
                d -= 8;
                s -= 8;
                Unsafe.WriteUnaligned(d, Unsafe.ReadUnaligned<ulong>(s));
                if (flush != null && (nuint)(pending - d) >= Chunk)
                {
                    flush(d, (nuint)(pending - d));
                    pending = d;
                }
            }

            while (d > dst)
            {
                MemTrace.NarrowStore();
                *--d = *--s;
            }

            if (flush != null && d != pending)
            {
                flush(d, (nuint)(pending - d));
            }
        }
    }

    public override void SetT(byte* dst, byte value, nuint len, delegate*<byte*, nuint, void> flush)
    {
        ulong pattern = Scalar.Pattern(value);
        byte* d = dst;
        byte* end = dst + len;
        byte* pending = d;
        while (d < end && ((nuint)d & 7) != 0)
        {
            MemTrace.NarrowStore();
            *d++ = value;
        }

        while ((nuint)(end - d) >= 8)
        {
            Unsafe.WriteUnaligned(d, pattern);
            d += 8;
            if (flush != null && (nuint)(d - pending) >= Chunk)
            {
                flush(pending, (nuint)(d - pending));
                pending = d;
            }
        }

        while (d < end)
        {
            MemTrace.NarrowStore();
            *d++ = value;
        }

        if (flush != null && d != pending)
        {
            flush(pending, (nuint)(d - pending));
        }
    }
}

/// <summary>PMEM_NO_MOVNT=1 with PMEM_NO_GENERIC_MEMCPY≠0: the runtime's memmove / memset, then one
/// flush of the whole range (persist.c L76-117).</summary>
internal sealed unsafe class LibcEngine : MemEngine
{
    public override string Name => "libc";

    public override bool IsSupported => true;

    public override bool HasNonTemporal => false;

    public override void MoveNt(byte* dst, byte* src, nuint len, delegate*<byte*, nuint, void> flush) =>
        MoveT(dst, src, len, flush);

    public override void SetNt(byte* dst, byte value, nuint len, delegate*<byte*, nuint, void> flush) =>
        SetT(dst, value, len, flush);

    public override void MoveT(byte* dst, byte* src, nuint len, delegate*<byte*, nuint, void> flush)
    {
        NativeMemory.Copy(src, dst, len);
        if (flush != null)
        {
            flush(dst, len);
        }
    }

    public override void SetT(byte* dst, byte value, nuint len, delegate*<byte*, nuint, void> flush)
    {
        NativeMemory.Fill(dst, len, value);
        if (flush != null)
        {
            flush(dst, len);
        }
    }
}
