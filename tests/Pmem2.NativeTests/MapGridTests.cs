using Pmem2.NativeTests.Infrastructure;
using Pmem2.Oracle;
using Xunit.Abstractions;

namespace Pmem2.NativeTests;

/// <summary>
/// Differential grid of pmem2_map_new: every combination is run through the native libpmem2 and through
/// ours over the same file descriptor; the error code (and message), or the size, effective granularity
/// and 2 MiB alignment, must be equal. Each [Fact] is one slice of the grid (a cartesian product), loops
/// over all its combinations and reports every mismatch at once.
/// </summary>
[Collection(NativeCollection.Name)]
public sealed class MapGridTests
{
    private const ulong KiB = OracleFiles.KiB;
    private const ulong MiB = OracleFiles.MiB;

    private readonly OracleFiles _files;
    private readonly ITestOutputHelper _output;

    public MapGridTests(OracleFiles files, ITestOutputHelper output)
    {
        NativeRequirement.Ensure();
        _files = files;
        _output = output;
    }

    /// <summary>Offsets of the grid for a file of <paramref name="size"/> bytes (duplicates removed).</summary>
    internal static ulong[] Offsets(ulong size) =>
        new ulong[] { 0, KiB, 4 * KiB, size / 2, size, 2 * size, (ulong)long.MaxValue & ~4095UL, (ulong)long.MaxValue + 1 }.Distinct().ToArray();

    /// <summary>Lengths of the grid for a file of <paramref name="size"/> bytes (duplicates removed).</summary>
    internal static ulong[] Lengths(ulong size) =>
        new ulong[] { 0, 3 * KiB, 4 * KiB, (size / 2) & ~4095UL, size, size + 4 * KiB, ulong.MaxValue & ~4095UL, ulong.MaxValue }.Distinct().ToArray();

    /// <summary>
    /// The full cartesian product for one value of PMEM2_FORCE_GRANULARITY: file size x offset x length x
    /// required granularity x sharing x protection x fd mode.
    /// </summary>
    internal static IEnumerable<MapCase> FullSlice(string? force) =>
        from size in OracleFiles.GridSizes
        from off in Offsets(size)
        from len in Lengths(size)
        from g in Raw.Granularities
        from sharing in Raw.Sharings
        from prot in Raw.Protections
        from ro in new[] { false, true }
        select new MapCase(SliceName(force), "fd", size, off, len, g, sharing, prot, ro, force);

    internal static string SliceName(string? force) => $"force={force ?? "unset"}";

    /// <summary>Slice "force spellings": accepted and rejected spellings of PMEM2_FORCE_GRANULARITY.</summary>
    internal static IEnumerable<MapCase> ForceSpellingSlice() =>
        from force in new[] { "byte", "Byte", "cache_line", "CaCHe_Line", "CACHELINE", "cacheline", "page", "Page", "0", "bogus", "BYTES", " PAGE", "" }
        from g in Raw.Granularities
        from sharing in Raw.Sharings
        select new MapCase("force-spellings", "fd", 16 * MiB, 0, 0, g, sharing, Raw.RW, false, force);

    [Fact]
    public void FullGridWithoutForcedGranularityMatchesNative() => RunFileSlice(SliceName(null), FullSlice(null), minimum: 10_000);

    [Fact]
    public void FullGridWithForcedByteMatchesNative() => RunFileSlice(SliceName("BYTE"), FullSlice("BYTE"), minimum: 10_000);

    [Fact]
    public void FullGridWithForcedCacheLineMatchesNative() => RunFileSlice(SliceName("CACHE_LINE"), FullSlice("CACHE_LINE"), minimum: 10_000);

    [Fact]
    public void FullGridWithForcedPageMatchesNative() => RunFileSlice(SliceName("PAGE"), FullSlice("PAGE"), minimum: 10_000);

    [Fact]
    public void ForceGranularitySpellingsMatchNative() => RunFileSlice("force-spellings", ForceSpellingSlice(), minimum: 100);

    /// <summary>
    /// Slice "anonymous": pmem2_source_from_anon size x offset x length x granularity x sharing x
    /// protection x forced granularity (anonymous maps ignore the offset and are always BYTE).
    /// </summary>
    [Fact]
    public void AnonymousSourcesMatchNative()
    {
        var differ = new Differ("anonymous");
        ulong[] sizes = [0, 3 * KiB, 4 * KiB, 1 * MiB];
        ulong[] offsets = [0, KiB, 4 * KiB, 2 * MiB, (ulong)long.MaxValue + 1];
        ulong[] lengths = [0, KiB, 4 * KiB, 1 * MiB, 2 * MiB, ulong.MaxValue & ~4095UL];
        using var force = ForceGranularity.Set(null);
        foreach (var forced in new[] { null, "PAGE", "CACHE_LINE" })
        {
            ForceGranularity.Change(forced);
            foreach (var size in sizes)
            {
                Assert.Equal(0, NativePmem2.pmem2_source_from_anon(out var nsrc, (nuint)size));
                Pmem2Source? osrc = null;
                var oursCreate = OursSide.Run(() =>
                {
                    osrc = Pmem2Source.FromAnonymous(size);
                    return Outcome.Ok();
                });
                try
                {
                    differ.Compare($"[anonymous] from_anon({Raw.Size(size)})", Outcome.Ok(), oursCreate, countsAsCombination: false);
                    var o = osrc;
                    differ.Compare($"[anonymous] size of anon({Raw.Size(size)})", NativeSide.Size(nsrc), o is null ? oursCreate : OursSide.Size(o), countsAsCombination: false);
                    differ.Compare($"[anonymous] alignment of anon({Raw.Size(size)})", NativeSide.Alignment(nsrc), o is null ? oursCreate : OursSide.Alignment(o), countsAsCombination: false);
                    differ.Compare($"[anonymous] get_fd of anon({Raw.Size(size)})", NativeSide.GetFd(nsrc), o is null ? oursCreate : OursSide.GetFd(o), countsAsCombination: false);
                    foreach (var c in from off in offsets
                                      from len in lengths
                                      from g in Raw.Granularities
                                      from sharing in Raw.Sharings
                                      from prot in new[] { Raw.RW, Raw.ProtNone }
                                      select new MapCase("anonymous", "anon", size, off, len, g, sharing, prot, false, forced))
                    {
                        differ.Compare(c, NativeSide.Map(nsrc, c), o is null ? oursCreate : OursSide.Map(o, c));
                    }
                }
                finally
                {
                    NativePmem2.pmem2_source_delete(ref nsrc);
                    osrc?.Dispose();
                }
            }
        }

        differ.AssertClean(_output, minimumCases: 1000);
    }

    /// <summary>Size of the map grid (all file slices), asserted so that a shrinking generator is noticed.</summary>
    [Fact]
    public void GridSizeIsReported()
    {
        var counts = Raw.Forces.ToDictionary(f => SliceName(f), f => FullSlice(f).Count());
        counts["force-spellings"] = ForceSpellingSlice().Count();
        foreach (var kv in counts)
        {
            _output.WriteLine($"{kv.Key}: {kv.Value} combinations");
        }

        var total = counts.Values.Sum();
        _output.WriteLine($"file grid total: {total} combinations (plus the anonymous slice and the source/config cases)");
        Assert.All(Raw.Forces, f => Assert.True(counts[SliceName(f)] >= 10_000, $"{SliceName(f)}: {counts[SliceName(f)]}"));
        Assert.True(total >= 40_000, $"grid total {total}");
    }

    private void RunFileSlice(string name, IEnumerable<MapCase> cases, int minimum)
    {
        var differ = new Differ(name);
        var natives = new Dictionary<(ulong, bool), nint>();
        var ours = new Dictionary<(ulong, bool), Pmem2Source?>();
        using var force = ForceGranularity.Set(null);
        string? currentForce = null;
        try
        {
            foreach (var size in OracleFiles.GridSizes)
            {
                foreach (var ro in new[] { false, true })
                {
                    var file = _files[size];
                    var nativeCreate = NativeSide.SourceFromFd(file.Fd(ro), out var nsrc);
                    Assert.True(nativeCreate.Succeeded, $"native pmem2_source_from_fd({file.Path}) failed: {nativeCreate}");
                    natives[(size, ro)] = nsrc;
                    Pmem2Source? osrc = null;
                    var oursCreate = OursSide.Run(() =>
                    {
                        osrc = Pmem2Source.FromHandle(ro ? file.ReadOnly : file.ReadWrite);
                        return Outcome.Ok();
                    });
                    differ.Compare($"[{name}] source from {(ro ? "O_RDONLY" : "O_RDWR")} fd of size {Raw.Size(size)}", nativeCreate, oursCreate, countsAsCombination: false);
                    ours[(size, ro)] = osrc;
                }
            }

            foreach (var c in cases)
            {
                if (c.Force != currentForce)
                {
                    ForceGranularity.Change(c.Force);
                    currentForce = c.Force;
                }

                var osrc = ours[(c.FileSize, c.ReadOnlyFd)];
                var oursOutcome = osrc is null ? Outcome.Threw(new InvalidOperationException("our Pmem2Source could not be created")) : OursSide.Map(osrc, c);
                differ.Compare(c, NativeSide.Map(natives[(c.FileSize, c.ReadOnlyFd)], c), oursOutcome);
            }
        }
        finally
        {
            foreach (var key in natives.Keys.ToList())
            {
                var src = natives[key];
                NativePmem2.pmem2_source_delete(ref src);
            }

            foreach (var src in ours.Values)
            {
                try
                {
                    src?.Dispose();
                }
                catch (NotImplementedException)
                {
                }
            }
        }

        differ.AssertClean(_output, minimum);
    }
}
