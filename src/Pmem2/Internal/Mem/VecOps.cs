using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pmem2.Internal.Mem;

/// <summary>
/// Per-ISA building blocks of the copy engines. Implemented by structs so that the generic loops in
/// <see cref="VecLoops"/> are specialised and fully inlined by the JIT for each instruction set.
/// Every multi-line block loads all of its source before it stores anything, which keeps each block
/// safe for overlapping moves in both directions.
/// </summary>
internal unsafe interface IVecOps
{
    /// <summary>Copies 256 bytes (4 lines): unaligned loads, aligned non-temporal stores.</summary>
    static abstract void Move256Nt(byte* d, byte* s);

    /// <summary>Copies 128 bytes: unaligned loads, aligned non-temporal stores.</summary>
    static abstract void Move128Nt(byte* d, byte* s);

    /// <summary>Copies 64 bytes: unaligned loads, aligned non-temporal stores.</summary>
    static abstract void Move64Nt(byte* d, byte* s);

    /// <summary>Copies 32 bytes with one aligned non-temporal store (d is 32-aligned).</summary>
    static abstract void Move32Nt(byte* d, byte* s);

    /// <summary>Copies 256 bytes with temporal stores.</summary>
    static abstract void Move256(byte* d, byte* s);

    /// <summary>Copies 64 bytes with temporal stores.</summary>
    static abstract void Move64(byte* d, byte* s);

    /// <summary>Overlap-safe copy of 1..64 bytes with temporal stores (all loads first).</summary>
    static abstract void MoveSmall(byte* d, byte* s, nuint len);
}

/// <summary>Fill counterpart of <see cref="IVecOps"/>; instances carry the broadcast value.</summary>
internal unsafe interface ISetOps<TSelf>
    where TSelf : struct, ISetOps<TSelf>
{
    static abstract TSelf Create(byte value);

    void Set256Nt(byte* d);

    void Set64Nt(byte* d);

    void Set32Nt(byte* d);

    void Set256(byte* d);

    void Set64(byte* d);

    /// <summary>Fills 1..64 bytes with temporal stores.</summary>
    void SetSmall(byte* d, nuint len);
}

/// <summary>Scalar pieces shared by every engine.</summary>
internal static unsafe class Scalar
{
    /// <summary>Overlap-safe copy of 1..16 bytes (two overlapping loads, then two stores).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MoveUpTo16(byte* d, byte* s, nuint len)
    {
        if (len >= 8)
        {
            ulong a = Unsafe.ReadUnaligned<ulong>(s);
            ulong b = Unsafe.ReadUnaligned<ulong>(s + len - 8);
            Unsafe.WriteUnaligned(d, a);
            Unsafe.WriteUnaligned(d + len - 8, b);
            return;
        }

        MoveUnder8(d, s, len);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void MoveUnder8(byte* d, byte* s, nuint len)
    {
        // Only reachable when len < 8, i.e. never when dst and len are 8-byte aligned.
        MemTrace.NarrowStore();
        if (len >= 4)
        {
            uint a = Unsafe.ReadUnaligned<uint>(s);
            uint b = Unsafe.ReadUnaligned<uint>(s + len - 4);
            Unsafe.WriteUnaligned(d, a);
            Unsafe.WriteUnaligned(d + len - 4, b);
        }
        else if (len >= 2)
        {
            ushort a = Unsafe.ReadUnaligned<ushort>(s);
            ushort b = Unsafe.ReadUnaligned<ushort>(s + len - 2);
            Unsafe.WriteUnaligned(d, a);
            Unsafe.WriteUnaligned(d + len - 2, b);
        }
        else
        {
            *d = *s;
        }
    }

    /// <summary>Fills 1..16 bytes with overlapping stores.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void SetUpTo16(byte* d, ulong pattern, nuint len)
    {
        if (len >= 8)
        {
            Unsafe.WriteUnaligned(d, pattern);
            Unsafe.WriteUnaligned(d + len - 8, pattern);
            return;
        }

        SetUnder8(d, pattern, len);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void SetUnder8(byte* d, ulong pattern, nuint len)
    {
        MemTrace.NarrowStore();
        if (len >= 4)
        {
            Unsafe.WriteUnaligned(d, (uint)pattern);
            Unsafe.WriteUnaligned(d + len - 4, (uint)pattern);
        }
        else if (len >= 2)
        {
            Unsafe.WriteUnaligned(d, (ushort)pattern);
            Unsafe.WriteUnaligned(d + len - 2, (ushort)pattern);
        }
        else
        {
            *d = (byte)pattern;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move16Nt(byte* d, byte* s) =>
        Sse2.StoreAlignedNonTemporal(d, Vector128.Load(s));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move8Nt(byte* d, byte* s) =>
        Sse2.X64.StoreNonTemporal((long*)d, Unsafe.ReadUnaligned<long>(s));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move4Nt(byte* d, byte* s) =>
        Sse2.StoreNonTemporal((int*)d, Unsafe.ReadUnaligned<int>(s));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Pattern(byte value) => value * 0x0101010101010101UL;
}

/// <summary>SSE2: 16-byte registers.</summary>
internal readonly unsafe struct Sse2Ops : IVecOps, ISetOps<Sse2Ops>
{
    private readonly Vector128<byte> _v;

    private Sse2Ops(Vector128<byte> v) => _v = v;

    public static Sse2Ops Create(byte value) => new(Vector128.Create(value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move256Nt(byte* d, byte* s)
    {
        var x0 = Vector128.Load(s);
        var x1 = Vector128.Load(s + 16);
        var x2 = Vector128.Load(s + 32);
        var x3 = Vector128.Load(s + 48);
        var x4 = Vector128.Load(s + 64);
        var x5 = Vector128.Load(s + 80);
        var x6 = Vector128.Load(s + 96);
        var x7 = Vector128.Load(s + 112);
        var x8 = Vector128.Load(s + 128);
        var x9 = Vector128.Load(s + 144);
        var x10 = Vector128.Load(s + 160);
        var x11 = Vector128.Load(s + 176);
        var x12 = Vector128.Load(s + 192);
        var x13 = Vector128.Load(s + 208);
        var x14 = Vector128.Load(s + 224);
        var x15 = Vector128.Load(s + 240);
        Sse2.StoreAlignedNonTemporal(d, x0);
        Sse2.StoreAlignedNonTemporal(d + 16, x1);
        Sse2.StoreAlignedNonTemporal(d + 32, x2);
        Sse2.StoreAlignedNonTemporal(d + 48, x3);
        Sse2.StoreAlignedNonTemporal(d + 64, x4);
        Sse2.StoreAlignedNonTemporal(d + 80, x5);
        Sse2.StoreAlignedNonTemporal(d + 96, x6);
        Sse2.StoreAlignedNonTemporal(d + 112, x7);
        Sse2.StoreAlignedNonTemporal(d + 128, x8);
        Sse2.StoreAlignedNonTemporal(d + 144, x9);
        Sse2.StoreAlignedNonTemporal(d + 160, x10);
        Sse2.StoreAlignedNonTemporal(d + 176, x11);
        Sse2.StoreAlignedNonTemporal(d + 192, x12);
        Sse2.StoreAlignedNonTemporal(d + 208, x13);
        Sse2.StoreAlignedNonTemporal(d + 224, x14);
        Sse2.StoreAlignedNonTemporal(d + 240, x15);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move128Nt(byte* d, byte* s)
    {
        var x0 = Vector128.Load(s);
        var x1 = Vector128.Load(s + 16);
        var x2 = Vector128.Load(s + 32);
        var x3 = Vector128.Load(s + 48);
        var x4 = Vector128.Load(s + 64);
        var x5 = Vector128.Load(s + 80);
        var x6 = Vector128.Load(s + 96);
        var x7 = Vector128.Load(s + 112);
        Sse2.StoreAlignedNonTemporal(d, x0);
        Sse2.StoreAlignedNonTemporal(d + 16, x1);
        Sse2.StoreAlignedNonTemporal(d + 32, x2);
        Sse2.StoreAlignedNonTemporal(d + 48, x3);
        Sse2.StoreAlignedNonTemporal(d + 64, x4);
        Sse2.StoreAlignedNonTemporal(d + 80, x5);
        Sse2.StoreAlignedNonTemporal(d + 96, x6);
        Sse2.StoreAlignedNonTemporal(d + 112, x7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move64Nt(byte* d, byte* s)
    {
        var x0 = Vector128.Load(s);
        var x1 = Vector128.Load(s + 16);
        var x2 = Vector128.Load(s + 32);
        var x3 = Vector128.Load(s + 48);
        Sse2.StoreAlignedNonTemporal(d, x0);
        Sse2.StoreAlignedNonTemporal(d + 16, x1);
        Sse2.StoreAlignedNonTemporal(d + 32, x2);
        Sse2.StoreAlignedNonTemporal(d + 48, x3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move32Nt(byte* d, byte* s)
    {
        var x0 = Vector128.Load(s);
        var x1 = Vector128.Load(s + 16);
        Sse2.StoreAlignedNonTemporal(d, x0);
        Sse2.StoreAlignedNonTemporal(d + 16, x1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move256(byte* d, byte* s)
    {
        var x0 = Vector128.Load(s);
        var x1 = Vector128.Load(s + 16);
        var x2 = Vector128.Load(s + 32);
        var x3 = Vector128.Load(s + 48);
        var x4 = Vector128.Load(s + 64);
        var x5 = Vector128.Load(s + 80);
        var x6 = Vector128.Load(s + 96);
        var x7 = Vector128.Load(s + 112);
        var x8 = Vector128.Load(s + 128);
        var x9 = Vector128.Load(s + 144);
        var x10 = Vector128.Load(s + 160);
        var x11 = Vector128.Load(s + 176);
        var x12 = Vector128.Load(s + 192);
        var x13 = Vector128.Load(s + 208);
        var x14 = Vector128.Load(s + 224);
        var x15 = Vector128.Load(s + 240);
        x0.Store(d);
        x1.Store(d + 16);
        x2.Store(d + 32);
        x3.Store(d + 48);
        x4.Store(d + 64);
        x5.Store(d + 80);
        x6.Store(d + 96);
        x7.Store(d + 112);
        x8.Store(d + 128);
        x9.Store(d + 144);
        x10.Store(d + 160);
        x11.Store(d + 176);
        x12.Store(d + 192);
        x13.Store(d + 208);
        x14.Store(d + 224);
        x15.Store(d + 240);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move64(byte* d, byte* s)
    {
        var x0 = Vector128.Load(s);
        var x1 = Vector128.Load(s + 16);
        var x2 = Vector128.Load(s + 32);
        var x3 = Vector128.Load(s + 48);
        x0.Store(d);
        x1.Store(d + 16);
        x2.Store(d + 32);
        x3.Store(d + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MoveSmall(byte* d, byte* s, nuint len)
    {
        if (len <= 16)
        {
            Scalar.MoveUpTo16(d, s, len);
        }
        else if (len <= 32)
        {
            var a = Vector128.Load(s);
            var b = Vector128.Load(s + len - 16);
            a.Store(d);
            b.Store(d + len - 16);
        }
        else
        {
            var a = Vector128.Load(s);
            var b = Vector128.Load(s + 16);
            var c = Vector128.Load(s + len - 32);
            var e = Vector128.Load(s + len - 16);
            a.Store(d);
            b.Store(d + 16);
            c.Store(d + len - 32);
            e.Store(d + len - 16);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set256Nt(byte* d)
    {
        Set64Nt(d);
        Set64Nt(d + 64);
        Set64Nt(d + 128);
        Set64Nt(d + 192);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set64Nt(byte* d)
    {
        Sse2.StoreAlignedNonTemporal(d, _v);
        Sse2.StoreAlignedNonTemporal(d + 16, _v);
        Sse2.StoreAlignedNonTemporal(d + 32, _v);
        Sse2.StoreAlignedNonTemporal(d + 48, _v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set32Nt(byte* d)
    {
        Sse2.StoreAlignedNonTemporal(d, _v);
        Sse2.StoreAlignedNonTemporal(d + 16, _v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set256(byte* d)
    {
        Set64(d);
        Set64(d + 64);
        Set64(d + 128);
        Set64(d + 192);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set64(byte* d)
    {
        _v.Store(d);
        _v.Store(d + 16);
        _v.Store(d + 32);
        _v.Store(d + 48);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetSmall(byte* d, nuint len)
    {
        if (len <= 16)
        {
            Scalar.SetUpTo16(d, _v.AsUInt64().ToScalar(), len);
        }
        else if (len <= 32)
        {
            _v.Store(d);
            _v.Store(d + len - 16);
        }
        else
        {
            _v.Store(d);
            _v.Store(d + 16);
            _v.Store(d + len - 32);
            _v.Store(d + len - 16);
        }
    }
}

/// <summary>AVX: 32-byte registers.</summary>
internal readonly unsafe struct AvxOps : IVecOps, ISetOps<AvxOps>
{
    private readonly Vector256<byte> _v;

    private AvxOps(Vector256<byte> v) => _v = v;

    public static AvxOps Create(byte value) => new(Vector256.Create(value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move256Nt(byte* d, byte* s)
    {
        var y0 = Vector256.Load(s);
        var y1 = Vector256.Load(s + 32);
        var y2 = Vector256.Load(s + 64);
        var y3 = Vector256.Load(s + 96);
        var y4 = Vector256.Load(s + 128);
        var y5 = Vector256.Load(s + 160);
        var y6 = Vector256.Load(s + 192);
        var y7 = Vector256.Load(s + 224);
        Avx.StoreAlignedNonTemporal(d, y0);
        Avx.StoreAlignedNonTemporal(d + 32, y1);
        Avx.StoreAlignedNonTemporal(d + 64, y2);
        Avx.StoreAlignedNonTemporal(d + 96, y3);
        Avx.StoreAlignedNonTemporal(d + 128, y4);
        Avx.StoreAlignedNonTemporal(d + 160, y5);
        Avx.StoreAlignedNonTemporal(d + 192, y6);
        Avx.StoreAlignedNonTemporal(d + 224, y7);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move128Nt(byte* d, byte* s)
    {
        var y0 = Vector256.Load(s);
        var y1 = Vector256.Load(s + 32);
        var y2 = Vector256.Load(s + 64);
        var y3 = Vector256.Load(s + 96);
        Avx.StoreAlignedNonTemporal(d, y0);
        Avx.StoreAlignedNonTemporal(d + 32, y1);
        Avx.StoreAlignedNonTemporal(d + 64, y2);
        Avx.StoreAlignedNonTemporal(d + 96, y3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move64Nt(byte* d, byte* s)
    {
        var y0 = Vector256.Load(s);
        var y1 = Vector256.Load(s + 32);
        Avx.StoreAlignedNonTemporal(d, y0);
        Avx.StoreAlignedNonTemporal(d + 32, y1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move32Nt(byte* d, byte* s) =>
        Avx.StoreAlignedNonTemporal(d, Vector256.Load(s));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move256(byte* d, byte* s)
    {
        var y0 = Vector256.Load(s);
        var y1 = Vector256.Load(s + 32);
        var y2 = Vector256.Load(s + 64);
        var y3 = Vector256.Load(s + 96);
        var y4 = Vector256.Load(s + 128);
        var y5 = Vector256.Load(s + 160);
        var y6 = Vector256.Load(s + 192);
        var y7 = Vector256.Load(s + 224);
        y0.Store(d);
        y1.Store(d + 32);
        y2.Store(d + 64);
        y3.Store(d + 96);
        y4.Store(d + 128);
        y5.Store(d + 160);
        y6.Store(d + 192);
        y7.Store(d + 224);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move64(byte* d, byte* s)
    {
        var y0 = Vector256.Load(s);
        var y1 = Vector256.Load(s + 32);
        y0.Store(d);
        y1.Store(d + 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MoveSmall(byte* d, byte* s, nuint len)
    {
        if (len <= 16)
        {
            Scalar.MoveUpTo16(d, s, len);
        }
        else if (len <= 32)
        {
            var a = Vector128.Load(s);
            var b = Vector128.Load(s + len - 16);
            a.Store(d);
            b.Store(d + len - 16);
        }
        else
        {
            var a = Vector256.Load(s);
            var b = Vector256.Load(s + len - 32);
            a.Store(d);
            b.Store(d + len - 32);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set256Nt(byte* d)
    {
        Avx.StoreAlignedNonTemporal(d, _v);
        Avx.StoreAlignedNonTemporal(d + 32, _v);
        Avx.StoreAlignedNonTemporal(d + 64, _v);
        Avx.StoreAlignedNonTemporal(d + 96, _v);
        Avx.StoreAlignedNonTemporal(d + 128, _v);
        Avx.StoreAlignedNonTemporal(d + 160, _v);
        Avx.StoreAlignedNonTemporal(d + 192, _v);
        Avx.StoreAlignedNonTemporal(d + 224, _v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set64Nt(byte* d)
    {
        Avx.StoreAlignedNonTemporal(d, _v);
        Avx.StoreAlignedNonTemporal(d + 32, _v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set32Nt(byte* d) => Avx.StoreAlignedNonTemporal(d, _v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set256(byte* d)
    {
        _v.Store(d);
        _v.Store(d + 32);
        _v.Store(d + 64);
        _v.Store(d + 96);
        _v.Store(d + 128);
        _v.Store(d + 160);
        _v.Store(d + 192);
        _v.Store(d + 224);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set64(byte* d)
    {
        _v.Store(d);
        _v.Store(d + 32);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetSmall(byte* d, nuint len)
    {
        if (len <= 16)
        {
            Scalar.SetUpTo16(d, _v.AsUInt64().ToScalar(), len);
        }
        else if (len <= 32)
        {
            var x = _v.GetLower();
            x.Store(d);
            x.Store(d + len - 16);
        }
        else
        {
            _v.Store(d);
            _v.Store(d + len - 32);
        }
    }
}

/// <summary>AVX-512F: 64-byte registers (one per cache line).</summary>
internal readonly unsafe struct Avx512Ops : IVecOps, ISetOps<Avx512Ops>
{
    private readonly Vector512<byte> _v;

    private Avx512Ops(Vector512<byte> v) => _v = v;

    public static Avx512Ops Create(byte value) => new(Vector512.Create(value));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move256Nt(byte* d, byte* s)
    {
        var z0 = Vector512.Load(s);
        var z1 = Vector512.Load(s + 64);
        var z2 = Vector512.Load(s + 128);
        var z3 = Vector512.Load(s + 192);
        Avx512F.StoreAlignedNonTemporal(d, z0);
        Avx512F.StoreAlignedNonTemporal(d + 64, z1);
        Avx512F.StoreAlignedNonTemporal(d + 128, z2);
        Avx512F.StoreAlignedNonTemporal(d + 192, z3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move128Nt(byte* d, byte* s)
    {
        var z0 = Vector512.Load(s);
        var z1 = Vector512.Load(s + 64);
        Avx512F.StoreAlignedNonTemporal(d, z0);
        Avx512F.StoreAlignedNonTemporal(d + 64, z1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move64Nt(byte* d, byte* s) =>
        Avx512F.StoreAlignedNonTemporal(d, Vector512.Load(s));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move32Nt(byte* d, byte* s) =>
        Avx.StoreAlignedNonTemporal(d, Vector256.Load(s));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move256(byte* d, byte* s)
    {
        var z0 = Vector512.Load(s);
        var z1 = Vector512.Load(s + 64);
        var z2 = Vector512.Load(s + 128);
        var z3 = Vector512.Load(s + 192);
        z0.Store(d);
        z1.Store(d + 64);
        z2.Store(d + 128);
        z3.Store(d + 192);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Move64(byte* d, byte* s) => Vector512.Load(s).Store(d);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void MoveSmall(byte* d, byte* s, nuint len) => AvxOps.MoveSmall(d, s, len);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set256Nt(byte* d)
    {
        Avx512F.StoreAlignedNonTemporal(d, _v);
        Avx512F.StoreAlignedNonTemporal(d + 64, _v);
        Avx512F.StoreAlignedNonTemporal(d + 128, _v);
        Avx512F.StoreAlignedNonTemporal(d + 192, _v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set64Nt(byte* d) => Avx512F.StoreAlignedNonTemporal(d, _v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set32Nt(byte* d) => Avx.StoreAlignedNonTemporal(d, _v.GetLower());

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set256(byte* d)
    {
        _v.Store(d);
        _v.Store(d + 64);
        _v.Store(d + 128);
        _v.Store(d + 192);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Set64(byte* d) => _v.Store(d);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetSmall(byte* d, nuint len)
    {
        if (len <= 16)
        {
            Scalar.SetUpTo16(d, _v.AsUInt64().ToScalar(), len);
        }
        else if (len <= 32)
        {
            var x = _v.GetLower().GetLower();
            x.Store(d);
            x.Store(d + len - 16);
        }
        else
        {
            var y = _v.GetLower();
            y.Store(d);
            y.Store(d + len - 32);
        }
    }
}
