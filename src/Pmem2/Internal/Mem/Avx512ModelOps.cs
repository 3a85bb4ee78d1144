using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Pmem2.Internal.Mem;

/// <summary>
/// A stand-in for <see cref="Avx512Ops"/> that runs on any x86-64 CPU, so the AVX-512F engine's
/// store and flush sequence is exercised by the engine tests on machines without AVX-512F. Every
/// 512-bit register is modelled as four 128-bit SSE2 registers: a 64-byte load is four loads, a
/// 64-byte (non-temporal) store four (non-temporal) stores to the same 64 bytes, and each operation
/// performs all its loads before its first store, as the AVX-512 code does (this is what makes the
/// overlapping-memmove cases meaningful). The operations, their widths at 64-byte granularity, the
/// alignment each assumes and the surrounding loops (<see cref="VecLoops"/>, shared by every engine
/// instantiation) are the same; only the instructions differ. Test-only: never selected by
/// <see cref="MemConfig"/>.
/// </summary>
internal readonly unsafe struct Avx512ModelOps : IVecOps, ISetOps<Avx512ModelOps>
{
    private readonly Vector128<byte> _v;

    private Avx512ModelOps(Vector128<byte> v) => _v = v;

    public static Avx512ModelOps Create(byte value) => new(Vector128.Create(value));

    /// <summary>Four 128-bit lanes of one modelled 512-bit register.</summary>
    private readonly struct Z
    {
        private readonly Vector128<byte> _a;
        private readonly Vector128<byte> _b;
        private readonly Vector128<byte> _c;
        private readonly Vector128<byte> _d;

        private Z(Vector128<byte> a, Vector128<byte> b, Vector128<byte> c, Vector128<byte> d)
        {
            _a = a;
            _b = b;
            _c = c;
            _d = d;
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Z Load(byte* s) => new(Vector128.Load(s), Vector128.Load(s + 16), Vector128.Load(s + 32), Vector128.Load(s + 48));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Store(byte* d)
        {
            _a.Store(d);
            _b.Store(d + 16);
            _c.Store(d + 32);
            _d.Store(d + 48);
        }

        /// <summary>vmovntdq zmm: d must be 64-byte aligned (checked, the AVX-512 store would fault).</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void StoreAlignedNonTemporal(byte* d)
        {
            CheckAligned(d, 64);
            Sse2.StoreAlignedNonTemporal(d, _a);
            Sse2.StoreAlignedNonTemporal(d + 16, _b);
            Sse2.StoreAlignedNonTemporal(d + 32, _c);
            Sse2.StoreAlignedNonTemporal(d + 48, _d);
        }
    }

    public static void Move256Nt(byte* d, byte* s)
    {
        var z0 = Z.Load(s);
        var z1 = Z.Load(s + 64);
        var z2 = Z.Load(s + 128);
        var z3 = Z.Load(s + 192);
        z0.StoreAlignedNonTemporal(d);
        z1.StoreAlignedNonTemporal(d + 64);
        z2.StoreAlignedNonTemporal(d + 128);
        z3.StoreAlignedNonTemporal(d + 192);
    }

    public static void Move128Nt(byte* d, byte* s)
    {
        var z0 = Z.Load(s);
        var z1 = Z.Load(s + 64);
        z0.StoreAlignedNonTemporal(d);
        z1.StoreAlignedNonTemporal(d + 64);
    }

    public static void Move64Nt(byte* d, byte* s) => Z.Load(s).StoreAlignedNonTemporal(d);

    /// <summary>vmovntdq ymm: d must be 32-byte aligned.</summary>
    public static void Move32Nt(byte* d, byte* s)
    {
        CheckAligned(d, 32);
        var a = Vector128.Load(s);
        var b = Vector128.Load(s + 16);
        Sse2.StoreAlignedNonTemporal(d, a);
        Sse2.StoreAlignedNonTemporal(d + 16, b);
    }

    public static void Move256(byte* d, byte* s)
    {
        var z0 = Z.Load(s);
        var z1 = Z.Load(s + 64);
        var z2 = Z.Load(s + 128);
        var z3 = Z.Load(s + 192);
        z0.Store(d);
        z1.Store(d + 64);
        z2.Store(d + 128);
        z3.Store(d + 192);
    }

    public static void Move64(byte* d, byte* s) => Z.Load(s).Store(d);

    /// <summary>AvxOps.MoveSmall (what Avx512Ops uses) with each 256-bit register as two 128-bit ones.</summary>
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
            var a0 = Vector128.Load(s);
            var a1 = Vector128.Load(s + 16);
            var b0 = Vector128.Load(s + len - 32);
            var b1 = Vector128.Load(s + len - 16);
            a0.Store(d);
            a1.Store(d + 16);
            b0.Store(d + len - 32);
            b1.Store(d + len - 16);
        }
    }

    public void Set256Nt(byte* d)
    {
        Set64Nt(d);
        Set64Nt(d + 64);
        Set64Nt(d + 128);
        Set64Nt(d + 192);
    }

    public void Set64Nt(byte* d)
    {
        CheckAligned(d, 64);
        Sse2.StoreAlignedNonTemporal(d, _v);
        Sse2.StoreAlignedNonTemporal(d + 16, _v);
        Sse2.StoreAlignedNonTemporal(d + 32, _v);
        Sse2.StoreAlignedNonTemporal(d + 48, _v);
    }

    public void Set32Nt(byte* d)
    {
        CheckAligned(d, 32);
        Sse2.StoreAlignedNonTemporal(d, _v);
        Sse2.StoreAlignedNonTemporal(d + 16, _v);
    }

    public void Set256(byte* d)
    {
        Set64(d);
        Set64(d + 64);
        Set64(d + 128);
        Set64(d + 192);
    }

    public void Set64(byte* d)
    {
        _v.Store(d);
        _v.Store(d + 16);
        _v.Store(d + 32);
        _v.Store(d + 48);
    }

    /// <summary>Avx512Ops.SetSmall with each 256-bit store as two 128-bit ones.</summary>
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void CheckAligned(byte* d, nuint alignment)
    {
        if (((nuint)d & (alignment - 1)) != 0)
        {
            ThrowMisaligned((nint)d, alignment);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowMisaligned(nint d, nuint alignment) =>
        throw new InvalidOperationException($"aligned store to 0x{d:x} is not {alignment}-byte aligned (the AVX-512 instruction would fault)");
}
