using System.Globalization;

namespace Pmem2.NativeTests.Infrastructure;

/// <summary>One step of a mem case, applied in lockstep to the model, native and ours.</summary>
internal abstract record MemOp
{
    public abstract void Apply(IMemSide side);
}

internal sealed record FillOp(ulong Off, ulong Len, byte Value) : MemOp
{
    public override void Apply(IMemSide side) => side.Fill(Off, Len, Value);
}

internal sealed record WriteOp(ulong Off, byte[] Data) : MemOp
{
    public override void Apply(IMemSide side) => side.Write(Off, Data);

    public override string ToString() => $"WriteOp {{ Off = {Off}, Len = {Data.Length} }}";
}

internal sealed record PersistOp(ulong Off, ulong Len) : MemOp
{
    public override void Apply(IMemSide side) => side.Persist(Off, Len);
}

internal sealed record DrainOp : MemOp
{
    public override void Apply(IMemSide side) => side.Drain();
}

internal sealed record MemcpyOp(ulong Dst, ulong Src, ulong Len, Pmem2MemFlags Flags) : MemOp
{
    public override void Apply(IMemSide side) => side.Memcpy(Dst, Src, Len, Flags);
}

internal sealed record CopyInOp(ulong Dst, byte[] Data, Pmem2MemFlags Flags) : MemOp
{
    public override void Apply(IMemSide side) => side.CopyIn(Dst, Data, Flags);

    public override string ToString() => $"CopyInOp {{ Dst = {Dst}, Len = {Data.Length}, Flags = {Flags} }}";
}

internal sealed record CopyInDeferredOp(ulong Dst, byte[] Data) : MemOp
{
    public override void Apply(IMemSide side) => side.CopyInDeferred(Dst, Data);

    public override string ToString() => $"CopyInDeferredOp {{ Dst = {Dst}, Len = {Data.Length} }}";
}

internal sealed record MemmoveOp(ulong Dst, ulong Src, ulong Len, Pmem2MemFlags Flags) : MemOp
{
    public override void Apply(IMemSide side) => side.Memmove(Dst, Src, Len, Flags);
}

internal sealed record MemsetOp(ulong Dst, byte Value, ulong Len, Pmem2MemFlags Flags) : MemOp
{
    public override void Apply(IMemSide side) => side.Memset(Dst, Value, Len, Flags);
}

/// <summary>Compare [Off, Off+Len) on every side against the model.</summary>
internal sealed record CheckOp(ulong Off, ulong Len) : MemOp
{
    public override void Apply(IMemSide side)
    {
    }
}

/// <summary>A named sequence of operations (one case of a ported libpmem2 test, with one flag set).</summary>
internal sealed record MemCase(string Name, IReadOnlyList<MemOp> Ops);

/// <summary>
/// The ported libpmem2 mem tests (pmem2_memcpy, pmem2_memmove, pmem2_memset, pmem2_movnt,
/// pmem2_movnt_align) as operation lists over one mapping of <see cref="FileSize"/> bytes.
/// </summary>
internal static class MemCases
{
    public const ulong FileSize = 4 << 20;
    private const ulong N = 2 * 4096; // movnt_align N_BYTES: two pages

    /// <summary>memcpy_common.c / memmove_common.c / memset_common.c Flags[].</summary>
    public static readonly Pmem2MemFlags[] FlagSets =
    [
        Pmem2MemFlags.None,
        Pmem2MemFlags.NoDrain,
        Pmem2MemFlags.NonTemporal,
        Pmem2MemFlags.Temporal,
        Pmem2MemFlags.NonTemporal | Pmem2MemFlags.Temporal,
        Pmem2MemFlags.NonTemporal | Pmem2MemFlags.NoDrain,
        Pmem2MemFlags.WriteCombining,
        Pmem2MemFlags.WriteBack,
        Pmem2MemFlags.NoFlush,
        Pmem2MemFlags.NoDrain | Pmem2MemFlags.NoFlush | Pmem2MemFlags.NonTemporal | Pmem2MemFlags.Temporal | Pmem2MemFlags.WriteCombining | Pmem2MemFlags.WriteBack,
    ];

    /// <summary>The s values of pmem2_movnt_align run here (the original runs 0..63).</summary>
    public static readonly ulong[] MovntAlignS = [0, 1, 7, 8, 15, 16, 31, 32, 33, 48, 63];

    /// <summary>pmem2_movnt sizes (powers of two up to 4096 as in the original, plus their neighbours).</summary>
    public static readonly ulong[] MovntSizes = [1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 1023, 1024, 2048, 4095, 4096];

    public static string FlagName(Pmem2MemFlags f) => f == Pmem2MemFlags.None ? "0" : f.ToString().Replace(", ", "|", StringComparison.Ordinal);

    /// <summary>The flag sets of the on-disk PAGE run (each PAGE copy msyncs, some milliseconds on ext4).</summary>
    public static readonly Pmem2MemFlags[] OnDiskFlagSets = [FlagSets[0], FlagSets[2], FlagSets[3], FlagSets[8], FlagSets[9]];

    /// <summary>All cases; <paramref name="portedOnly"/> keeps pmem2_memcpy and pmem2_memset with <see cref="OnDiskFlagSets"/> (the on-disk run).</summary>
    public static IEnumerable<MemCase> All(bool portedOnly = false) =>
        portedOnly ? Memcpy(OnDiskFlagSets).Concat(Memset(OnDiskFlagSets)) : Memcpy().Concat(Memmove()).Concat(Memset()).Concat(Movnt()).Concat(MovntAlign()).Concat(Deferred());

    /// <summary>
    /// Ours' extension CopyNonTemporalDeferred + CompleteDeferred against native memcpy(NONTEMPORAL|NODRAIN)
    /// followed by its drain (msync on PAGE): the movnt sizes at three destination alignments.
    /// </summary>
    public static IEnumerable<MemCase> Deferred()
    {
        const ulong dstBase = (3 * (FileSize / 4)) + (64 << 10);
        foreach (var size in MovntSizes.Concat([8192UL, 65536UL + 13]))
        {
            var data = Pattern(size, (int)size + 7);
            foreach (var dstOff in new ulong[] { 0, 1, 63 })
            {
                yield return new MemCase($"deferred NT copy size={size} dst={dstBase + dstOff}",
                [
                    new FillOp(dstBase, size + 128, 0xEE),
                    new CopyInDeferredOp(dstBase + dstOff, data),
                    new CheckOp(dstBase, size + 128),
                ]);
            }
        }
    }

    /// <summary>pmem2_memcpy TESTS.py cases (dest_off, src_off, 4096), both directions, every flag set.</summary>
    public static IEnumerable<MemCase> Memcpy(Pmem2MemFlags[]? flagSets = null)
    {
        const ulong bytes = 4096;
        foreach (var (doff, soff) in new (ulong, ulong)[] { (0, 0), (7, 0), (7, 9), (0, 9) })
        {
            foreach (var (dest, src) in new (ulong, ulong)[] { (0, FileSize / 2), (FileSize / 2, 0) })
            {
                foreach (var f in flagSets ?? FlagSets)
                {
                    var ops = new List<MemOp>
                    {
                        new FillOp(dest, bytes, 0), new PersistOp(dest, bytes),
                        new FillOp(src, bytes, 0), new PersistOp(src, bytes),
                        new FillOp(src, bytes / 4, 0x5A), new PersistOp(src, bytes / 4),
                        new FillOp(src + bytes / 4, bytes / 4, 0x46), new PersistOp(src + bytes / 4, bytes / 4),
                        new MemcpyOp(dest + doff, dest + doff, bytes / 2, f), // dest == src
                        new MemcpyOp(dest + doff, src, 0, f), // len == 0
                        new MemcpyOp(dest + doff, src + soff, bytes / 2, f),
                        new CheckOp(dest, bytes + 64),
                        new CheckOp(src, bytes + 64),
                    };
                    yield return new MemCase($"memcpy dest={dest}+{doff} src={src}+{soff} len={bytes / 2} flags={FlagName(f)}", ops);
                }
            }
        }
    }

    /// <summary>pmem2_memmove TESTS.py cases (b: length, d: dest offset, s: src offset, o:1 same buffer).</summary>
    public static IEnumerable<MemCase> Memmove()
    {
        (ulong B, ulong D, ulong S, bool Overlap)[] cases =
        [
            (4096, 0, 0, false), (4096, 0, 7, false), (4096, 7, 13, false), (4096, 0, 23, true),
            (4096, 21, 0, false), (4096, 21, 7, false), (4096, 0, 20, true), (4096, 13, 20, true),
            (2048, 33, 0, true), (4096, 20, 0, true), (8, 0, 0, false), (4, 63, 0, false), (8, 2, 0, true),
        ];
        foreach (var (bytes, doff, soff, overlap) in cases)
        {
            var layouts = overlap
                ? new (ulong, ulong)[] { (0, 0) }
                : [(0, FileSize / 2), (FileSize / 2, 0)];
            foreach (var (dst, src) in layouts)
            {
                foreach (var f in FlagSets)
                {
                    var ops = new List<MemOp>
                    {
                        new FillOp(src, bytes, 0x11), new FillOp(dst, bytes, 0x22),
                        new FillOp(src, bytes / 4, 0x33), new FillOp(src + bytes / 4, bytes / 4, 0x44),
                        new PersistOp(src, bytes), new PersistOp(dst, bytes),
                        new MemmoveOp(dst + doff, dst + doff, bytes / 2, f), // dest == src
                        new CheckOp(dst, bytes + doff + 64),
                        new MemmoveOp(dst + doff, src + soff, 0, f), // len == 0
                        new MemmoveOp(dst + doff, src + soff, bytes / 2, f),
                        new CheckOp(dst, bytes + doff + 64),
                        new CheckOp(src, bytes + soff + 64),
                    };
                    if ((f & Pmem2MemFlags.NoFlush) != 0)
                    {
                        ops.Add(new PersistOp(dst + doff, bytes / 2));
                    }

                    yield return new MemCase($"memmove b:{bytes} d:{doff} s:{soff}{(overlap ? " o:1" : string.Empty)} dst={dst} src={src} flags={FlagName(f)}", ops);
                }
            }
        }
    }

    /// <summary>pmem2_memset TESTS.py cases (offset, length): (0, 8) and (13, 4096).</summary>
    public static IEnumerable<MemCase> Memset(Pmem2MemFlags[]? flagSets = null)
    {
        foreach (var (off, bytes) in new (ulong, ulong)[] { (0, 8), (13, 4096) })
        {
            foreach (var f in flagSets ?? FlagSets)
            {
                var ops = new List<MemOp>
                {
                    new FillOp(0, bytes + off + 64, 0), new PersistOp(0, bytes),
                    new MemsetOp(off, 0x5A, 0, f),
                    new MemsetOp(off, 0x5A, bytes / 4, f),
                    new MemsetOp(off + bytes / 4, 0x46, bytes / 4, f),
                    new CheckOp(0, bytes + off + 64),
                };
                if ((f & Pmem2MemFlags.NoFlush) != 0)
                {
                    ops.Add(new PersistOp(0, bytes));
                }

                yield return new MemCase($"memset off={off} len={bytes} flags={FlagName(f)}", ops);
            }
        }
    }

    /// <summary>pmem2_movnt: memcpy of every size from a buffer outside the map; the byte after stays untouched.</summary>
    public static IEnumerable<MemCase> Movnt()
    {
        const ulong dstBase = 3 * (FileSize / 4);
        foreach (var size in MovntSizes)
        {
            var data = Pattern(size, (int)size);
            foreach (var dstOff in new ulong[] { 0, 1, 63 })
            {
                foreach (var f in FlagSets)
                {
                    var dst = dstBase + dstOff;
                    yield return new MemCase($"movnt size={size} dst={dst} flags={FlagName(f)}",
                    [
                        new FillOp(dstBase, 8192, 0xEE),
                        new CopyInOp(dst, data, f),
                        new DrainOp(),
                        new CheckOp(dstBase, 8192),
                    ]);
                }
            }
        }
    }

    /// <summary>
    /// pmem2_movnt_align: C (memcpy), F / B (memmove forward / backward over overlapping ranges) and
    /// S (memset) with unaligned sizes, unaligned starts and both, for the s values of <see cref="MovntAlignS"/>.
    /// The sources hold a pattern (the original copies zeros), so that a wrong direction or offset shows.
    /// </summary>
    public static IEnumerable<MemCase> MovntAlign()
    {
        const ulong page = 4096;
        const ulong cBase = 1 << 20;
        const ulong fBase = 2 << 20;
        const ulong bBase = (2 << 20) + (256 << 10);
        const ulong sBase = (2 << 20) + (512 << 10);

        IEnumerable<(ulong Doff, ulong Soff, ulong Len)> Shapes()
        {
            yield return (0, 0, 0);
            foreach (var s in MovntAlignS)
            {
                yield return (0, 0, N - s);
                yield return (s, 0, N - s);
                yield return (s, s, N - (2 * s));
            }
        }

        foreach (var (doff, soff, len) in Shapes())
        {
            var pattern = Pattern(len, (int)(doff * 131 + soff * 17 + len));
            foreach (var f in FlagSets)
            {
                var tag = $"doff={doff} soff={soff} len={len} flags={FlagName(f)}";

                // C: separate source and destination.
                ulong cDst = cBase, cSrc = cBase + (64 << 10);
                yield return new MemCase($"movnt_align C {tag}",
                [
                    new FillOp(cDst, N, 2), new FillOp(cSrc, N, 3),
                    new FillOp(cDst + doff, len, 1), new WriteOp(cSrc + soff, pattern),
                    new MemcpyOp(cDst + doff, cSrc + soff, len, f),
                    new CheckOp(cDst - 64, N + 128),
                ]);

                // F: dst below src, overlapping (forward copy).
                ulong fDst = fBase, fSrc = fBase + N - page;
                yield return new MemCase($"movnt_align F {tag}",
                [
                    new FillOp(fDst, (2 * N) - page, 2),
                    new FillOp(fDst + doff, len, 1), new WriteOp(fSrc + soff, pattern),
                    new MemmoveOp(fDst + doff, fSrc + soff, len, f),
                    new CheckOp(fDst - 64, (2 * N) - page + 128),
                ]);

                // B: dst above src, overlapping (backward copy).
                ulong bSrc = bBase, bDst = bBase + N - page;
                yield return new MemCase($"movnt_align B {tag}",
                [
                    new FillOp(bSrc, (2 * N) - page, 2),
                    new FillOp(bDst + doff, len, 1), new WriteOp(bSrc + soff, pattern),
                    new MemmoveOp(bDst + doff, bSrc + soff, len, f),
                    new CheckOp(bSrc - 64, (2 * N) - page + 128),
                ]);

                // S: memset.
                yield return new MemCase($"movnt_align S {tag}",
                [
                    new FillOp(sBase, N, 2),
                    new MemsetOp(sBase + doff, 1, len, f),
                    new CheckOp(sBase - 64, N + 128),
                ]);
            }
        }
    }

    /// <summary>Deterministic non-constant bytes (no two neighbours alike, no period of 64).</summary>
    public static byte[] Pattern(ulong length, int seed)
    {
        var data = new byte[length];
        new Random(seed).NextBytes(data);
        return data;
    }

    public static string Describe(MemOp op) => op.ToString().Replace("Op {", " {", StringComparison.Ordinal);

    public static string Hex(ulong v) => v.ToString("x", CultureInfo.InvariantCulture);
}
