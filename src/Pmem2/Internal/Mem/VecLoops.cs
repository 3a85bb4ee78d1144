using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pmem2.Internal.Mem;

/// <summary>
/// The copy and fill loops of libpmem2's x86_64 engines (memcpy_nt_*.c, memcpy_t_*.c, memset_*),
/// written once and specialised per instruction set through <see cref="IVecOps"/> / <see cref="ISetOps{TSelf}"/>.
/// A null flush pointer means "no flush instructions" (eADR "empty" and NOFLUSH kinds).
/// None of these routines fences; the dispatcher in <see cref="MemOps"/> owns the barrier.
/// </summary>
internal static unsafe class VecLoops
{
    /// <summary>Bytes between the sfences of the write-combining workaround (PERF_BARRIER_SIZE, 12 lines).</summary>
    public const int PerfBarrierSize = 12 * 64;

    /// <summary>How far ahead the non-temporal copies prefetch their source (INI_PREFETCH_SIZE, 64 lines).</summary>
    private const int IniPrefetchSize = 64 * 64;

    /// <summary>Temporal bodies flush every this many bytes, right after storing them (4 lines: measured
    /// on AMD EPYC, batching 16 lines per flush call was up to 1.5x slower at 64 KiB-16 MiB through the
    /// old counted flush; through the uncounted <c>CpuFlush.FlushLines</c>, 256 B, 512 B and 1 KiB are
    /// equal within the paired benchmark's noise, and one flush of the whole range after the loop is
    /// 1.26-1.37x slower than libpmem2 at 64 KiB-1 MiB, so lines are flushed while still hot).</summary>
    private const int FlushChunk = 256;

    // ----------------------------------------------------------------------------------------
    // memmove, non-temporal
    // ----------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MoveNt<T>(byte* d, byte* s, nuint len, delegate*<byte*, nuint, void> flush, bool wcBarrier)
        where T : IVecOps
    {
        if ((nuint)(d - s) >= len)
        {
            MoveNtFw<T>(d, s, len, flush, wcBarrier);
        }
        else
        {
            MoveNtBw<T>(d, s, len, flush, wcBarrier);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void MoveNtFw<T>(byte* d, byte* s, nuint len, delegate*<byte*, nuint, void> flush, bool wcBarrier)
        where T : IVecOps
    {
        nuint cnt = (nuint)d & 63;
        if (cnt != 0)
        {
            cnt = 64 - cnt;
            if (cnt > len)
            {
                cnt = len;
            }

            T.MoveSmall(d, s, cnt);
            if (flush != null)
            {
                flush(d, cnt);
            }

            d += cnt;
            s += cnt;
            len -= cnt;
        }

        byte* srcEnd = s + len;
        PrefetchIniFw(s, len);
        while (len >= PerfBarrierSize)
        {
            PrefetchNextFw(s, srcEnd);
            T.Move256Nt(d, s);
            T.Move256Nt(d + 256, s + 256);
            T.Move256Nt(d + 512, s + 512);
            d += PerfBarrierSize;
            s += PerfBarrierSize;
            len -= PerfBarrierSize;
            if (wcBarrier && len != 0)
            {
                Sse.StoreFence();
            }
        }

        while (len >= 256)
        {
            T.Move256Nt(d, s);
            d += 256;
            s += 256;
            len -= 256;
        }

        if (len >= 128)
        {
            T.Move128Nt(d, s);
            d += 128;
            s += 128;
            len -= 128;
        }

        if (len >= 64)
        {
            T.Move64Nt(d, s);
            d += 64;
            s += 64;
            len -= 64;
        }

        if (len != 0)
        {
            MoveNtTail<T>(d, s, len, flush);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void MoveNtBw<T>(byte* d, byte* s, nuint len, delegate*<byte*, nuint, void> flush, bool wcBarrier)
        where T : IVecOps
    {
        d += len;
        s += len;
        nuint cnt = (nuint)d & 63;
        if (cnt != 0)
        {
            if (cnt > len)
            {
                cnt = len;
            }

            d -= cnt;
            s -= cnt;
            len -= cnt;
            T.MoveSmall(d, s, cnt);
            if (flush != null)
            {
                flush(d, cnt);
            }
        }

        byte* srcBegin = s - len;
        PrefetchIniBw(s, len);
        while (len >= PerfBarrierSize)
        {
            PrefetchNextBw(s, srcBegin);
            d -= PerfBarrierSize;
            s -= PerfBarrierSize;
            len -= PerfBarrierSize;
            T.Move256Nt(d + 512, s + 512);
            T.Move256Nt(d + 256, s + 256);
            T.Move256Nt(d, s);
            if (wcBarrier && len != 0)
            {
                Sse.StoreFence();
            }
        }

        while (len >= 256)
        {
            d -= 256;
            s -= 256;
            len -= 256;
            T.Move256Nt(d, s);
        }

        if (len >= 128)
        {
            d -= 128;
            s -= 128;
            len -= 128;
            T.Move128Nt(d, s);
        }

        if (len >= 64)
        {
            d -= 64;
            s -= 64;
            len -= 64;
            T.Move64Nt(d, s);
        }

        if (len != 0)
        {
            MoveNtTail<T>(d - len, s - len, len, flush);
        }
    }

    // Source prefetch of libpmem2's non-temporal copies (memcpy_memset.h: the sfences of the
    // write-combining workaround slow down reading from DRAM, so the source is prefetched ahead):
    // the first 4 KiB up front, then per 768-byte step the 12 lines 4 KiB ahead, never past the source.

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchIniFw(byte* s, nuint len)
    {
        nuint pref = len < IniPrefetchSize ? len : IniPrefetchSize;
        for (nuint i = 0; i < pref; i += 64)
        {
            Sse.Prefetch0(s + i);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchIniBw(byte* s, nuint len)
    {
        nuint pref = len < IniPrefetchSize ? len : IniPrefetchSize;
        for (nuint i = 0; i < pref; i += 64)
        {
            Sse.Prefetch0(s - i);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchNextFw(byte* s, byte* srcEnd)
    {
        if ((nuint)(srcEnd - s) <= IniPrefetchSize)
        {
            return;
        }

        byte* a = s + IniPrefetchSize;
        byte* end = (nuint)(srcEnd - a) > PerfBarrierSize ? a + PerfBarrierSize : srcEnd;
        for (; a < end; a += 64)
        {
            Sse.Prefetch0(a);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchNextBw(byte* s, byte* srcBegin)
    {
        if ((nuint)(s - srcBegin) < IniPrefetchSize)
        {
            return;
        }

        byte* a = s - IniPrefetchSize;
        byte* end = (nuint)(a - srcBegin) > PerfBarrierSize ? a - PerfBarrierSize : srcBegin;
        for (; a >= end; a -= 64)
        {
            Sse.Prefetch0(a);
        }
    }

    /// <summary>Tail (1..63 bytes) starting at a 64-aligned address (forward) or ending at one
    /// (backward): one NT store when it is exactly 32, 16, 8 or 4 bytes, else temporal + flush.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void MoveNtTail<T>(byte* d, byte* s, nuint len, delegate*<byte*, nuint, void> flush)
        where T : IVecOps
    {
        switch (len)
        {
            case 32:
                T.Move32Nt(d, s);
                return;
            case 16:
                Scalar.Move16Nt(d, s);
                return;
            case 8:
                Scalar.Move8Nt(d, s);
                return;
            case 4:
                Scalar.Move4Nt(d, s);
                return;
        }

        T.MoveSmall(d, s, len);
        if (flush != null)
        {
            flush(d, len);
        }
    }

    // ----------------------------------------------------------------------------------------
    // memmove, temporal (+ flush)
    // ----------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MoveT<T>(byte* d, byte* s, nuint len, delegate*<byte*, nuint, void> flush)
        where T : IVecOps
    {
        if (len <= 64)
        {
            T.MoveSmall(d, s, len);
            if (flush != null)
            {
                flush(d, len);
            }

            return;
        }

        if ((nuint)(d - s) >= len)
        {
            MoveTFw<T>(d, s, len, flush);
        }
        else
        {
            MoveTBw<T>(d, s, len, flush);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void MoveTFw<T>(byte* d, byte* s, nuint len, delegate*<byte*, nuint, void> flush)
        where T : IVecOps
    {
        byte* pending = d;
        nuint cnt = (nuint)d & 63;
        if (cnt != 0)
        {
            cnt = 64 - cnt; // len > 64 here, so the head always fits
            T.MoveSmall(d, s, cnt);
            d += cnt;
            s += cnt;
            len -= cnt;
        }

        while (len >= 256)
        {
            T.Move256(d, s);
            d += 256;
            s += 256;
            len -= 256;
            if (flush != null && (nuint)(d - pending) >= FlushChunk)
            {
                flush(pending, (nuint)(d - pending));
                pending = d;
            }
        }

        while (len >= 64)
        {
            T.Move64(d, s);
            d += 64;
            s += 64;
            len -= 64;
        }

        if (len != 0)
        {
            T.MoveSmall(d, s, len);
            d += len;
        }

        if (flush != null && d != pending)
        {
            flush(pending, (nuint)(d - pending));
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static void MoveTBw<T>(byte* d, byte* s, nuint len, delegate*<byte*, nuint, void> flush)
        where T : IVecOps
    {
        d += len;
        s += len;
        byte* pending = d;
        nuint cnt = (nuint)d & 63;
        if (cnt != 0)
        {
            d -= cnt;
            s -= cnt;
            len -= cnt;
            T.MoveSmall(d, s, cnt);
        }

        while (len >= 256)
        {
            d -= 256;
            s -= 256;
            len -= 256;
            T.Move256(d, s);
            if (flush != null && (nuint)(pending - d) >= FlushChunk)
            {
                flush(d, (nuint)(pending - d));
                pending = d;
            }
        }

        while (len >= 64)
        {
            d -= 64;
            s -= 64;
            len -= 64;
            T.Move64(d, s);
        }

        if (len != 0)
        {
            d -= len;
            s -= len;
            T.MoveSmall(d, s, len);
        }

        if (flush != null && d != pending)
        {
            flush(d, (nuint)(pending - d));
        }
    }

    // ----------------------------------------------------------------------------------------
    // memset
    // ----------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static void SetNt<T>(byte* d, byte value, nuint len, delegate*<byte*, nuint, void> flush, bool wcBarrier)
        where T : struct, ISetOps<T>
    {
        T ops = T.Create(value);
        nuint cnt = (nuint)d & 63;
        if (cnt != 0)
        {
            cnt = 64 - cnt;
            if (cnt > len)
            {
                cnt = len;
            }

            ops.SetSmall(d, cnt);
            if (flush != null)
            {
                flush(d, cnt);
            }

            d += cnt;
            len -= cnt;
        }

        while (len >= PerfBarrierSize)
        {
            ops.Set256Nt(d);
            ops.Set256Nt(d + 256);
            ops.Set256Nt(d + 512);
            d += PerfBarrierSize;
            len -= PerfBarrierSize;
            if (wcBarrier && len != 0)
            {
                Sse.StoreFence();
            }
        }

        while (len >= 256)
        {
            ops.Set256Nt(d);
            d += 256;
            len -= 256;
        }

        while (len >= 64)
        {
            ops.Set64Nt(d);
            d += 64;
            len -= 64;
        }

        if (len == 0)
        {
            return;
        }

        switch (len)
        {
            case 32:
                ops.Set32Nt(d);
                return;
            case 16:
                Sse2.StoreAlignedNonTemporal(d, Vector128.Create(value));
                return;
            case 8:
                Sse2.X64.StoreNonTemporal((long*)d, (long)Scalar.Pattern(value));
                return;
            case 4:
                Sse2.StoreNonTemporal((int*)d, (int)Scalar.Pattern(value));
                return;
        }

        ops.SetSmall(d, len);
        if (flush != null)
        {
            flush(d, len);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    public static void SetT<T>(byte* d, byte value, nuint len, delegate*<byte*, nuint, void> flush)
        where T : struct, ISetOps<T>
    {
        T ops = T.Create(value);
        if (len <= 64)
        {
            ops.SetSmall(d, len);
            if (flush != null)
            {
                flush(d, len);
            }

            return;
        }

        byte* pending = d;
        nuint cnt = (nuint)d & 63;
        if (cnt != 0)
        {
            cnt = 64 - cnt;
            ops.SetSmall(d, cnt);
            d += cnt;
            len -= cnt;
        }

        while (len >= 256)
        {
            ops.Set256(d);
            d += 256;
            len -= 256;
            if (flush != null && (nuint)(d - pending) >= FlushChunk)
            {
                flush(pending, (nuint)(d - pending));
                pending = d;
            }
        }

        while (len >= 64)
        {
            ops.Set64(d);
            d += 64;
            len -= 64;
        }

        if (len != 0)
        {
            ops.SetSmall(d, len);
            d += len;
        }

        if (flush != null && d != pending)
        {
            flush(pending, (nuint)(d - pending));
        }
    }
}
