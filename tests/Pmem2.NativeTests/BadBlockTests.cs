using Pmem2.NativeTests.Infrastructure;
using Pmem2.Oracle;
using Xunit.Abstractions;

namespace Pmem2.NativeTests;

/// <summary>
/// pmem2_badblock_context_new / next / clear against native libpmem2 (Debian 1.12.1, built with
/// libndctl) on this machine's real files, which are on no NVDIMM namespace.
/// </summary>
/// <remarks>
/// Why the fake sysfs trees of Pmem2.Tests (fsdax namespace with bad sectors, device DAX region) are
/// not compared with native: native libpmem2 gets regions, namespaces and bad blocks from libndctl,
/// which reads the fixed paths /sys/bus/nd/devices, /sys/class/... and /dev/ndctlN with no root
/// override and only enumerates a bus when its provider, commands, region (resource, size, nstype,
/// mappings, dimm nfit attributes ...) and namespace attribute sets are complete. Pointing it at a
/// fake tree would need a private mount namespace with a bind mount over /sys and a faithful
/// reproduction of several dozen kernel attributes whose absence libndctl treats as "no bus" -- at
/// which point the test would check our fake against libndctl's parser, not bad-block handling.
/// What native can be compared with here is compared: the no-namespace result, the anonymous
/// source error, and clear (which on a regular file needs no namespace: punch hole + reallocate).
/// </remarks>
[Collection(NativeCollection.Name)]
public sealed class BadBlockTests
{
    private readonly OracleFiles _files;
    private readonly ITestOutputHelper _output;

    public BadBlockTests(OracleFiles files, ITestOutputHelper output)
    {
        NativeRequirement.Ensure();
        _files = files;
        _output = output;
    }

    [Fact]
    public void ContextAndNextMatchNativeOffAnyNamespace()
    {
        var differ = new Differ("bad block context");
        var sources = new List<(string Label, Func<nint> Native, Func<Pmem2Source> Ours)>
        {
            ("anonymous 1 MiB", () => { Assert.Equal(0, NativePmem2.pmem2_source_from_anon(out var s, 1 << 20)); return s; }, () => Pmem2Source.FromAnonymous(1 << 20)),
        };
        foreach (var size in new[] { 0UL, 16 * OracleFiles.MiB })
        {
            foreach (var ro in new[] { false, true })
            {
                var file = _files[size];
                sources.Add(($"{(ro ? "O_RDONLY" : "O_RDWR")} file of {Raw.Size(size)}",
                    () => { Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var s, file.Fd(ro))); return s; },
                    () => Pmem2Source.FromHandle(ro ? file.ReadOnly : file.ReadWrite)));
            }
        }

        foreach (var (label, makeNative, makeOurs) in sources)
        {
            var nsrc = makeNative();
            using var osrc = makeOurs();
            try
            {
                NativePmem2.ResetErrorMessage();
                var rc = NativePmem2.pmem2_badblock_context_new(out var nctx, nsrc);
                var native = rc == 0 ? Outcome.Ok() : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                Pmem2BadBlockContext? octx = null;
                differ.Compare($"badblock_context_new({label})", native, OursSide.Run(() => { octx = Pmem2BadBlockContext.Create(osrc); return Outcome.Ok(); }));
                if (rc == 0 && octx is not null)
                {
                    for (var i = 0; i < 2; i++)
                    {
                        NativePmem2.ResetErrorMessage();
                        var bb = new nuint[2];
                        rc = NativePmem2.pmem2_badblock_next(nctx, bb);
                        native = rc == 0 ? Outcome.Value(bb[0]) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                        differ.Compare($"badblock_next #{i}({label})", native, OursSide.Run(() => Outcome.Value(octx.Next().Offset)));
                    }

                    NativePmem2.pmem2_badblock_context_delete(ref nctx);
                    octx.Dispose();
                }
            }
            finally
            {
                NativePmem2.pmem2_source_delete(ref nsrc);
            }
        }

        differ.AssertClean(_output, minimumCases: 13);
    }

    /// <summary>Clear on regular files (no namespace needed): same code, and two identical files stay
    /// identical (the cleared blocks read back as zeros, the size does not change).</summary>
    [Fact]
    public void ClearMatchesNativeOnRegularFiles()
    {
        var differ = new Differ("bad block clear");
        const int size = 64 * 1024;
        var initial = MemCases.Pattern(size, 77);
        (ulong Offset, ulong Length)[] ranges = [(4096, 4096), (0, 8192), (100, 10), (60 * 1024, 8192), (size, 4096), (12288, 0), ((ulong)long.MaxValue + 1, 4096), (4096, (ulong)long.MaxValue + 1)];
        foreach (var ro in new[] { false, true })
        {
            foreach (var (off, len) in ranges)
            {
                var nativePath = _files.NewPath("bb-native");
                var oursPath = _files.NewPath("bb-ours");
                File.WriteAllBytes(nativePath, initial);
                File.WriteAllBytes(oursPath, initial);
                var nativeOk = false;
                var label = $"clear({(ro ? "O_RDONLY" : "O_RDWR")}, offset {off}, length {len})";
                try
                {
                    var access = ro ? FileAccess.Read : FileAccess.ReadWrite;
                    using (var nh = File.OpenHandle(nativePath, FileMode.Open, access))
                    using (var oh = File.OpenHandle(oursPath, FileMode.Open, access))
                    {
                        Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var nsrc, (int)nh.DangerousGetHandle()));
                        using var osrc = Pmem2Source.FromHandle(oh);
                        Assert.Equal(0, NativePmem2.pmem2_badblock_context_new(out var nctx, nsrc));
                        using var octx = Pmem2BadBlockContext.Create(osrc);
                        NativePmem2.ResetErrorMessage();
                        var rc = NativePmem2.pmem2_badblock_clear(nctx, [(nuint)off, (nuint)len]);
                        var native = rc == 0 ? Outcome.Ok() : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                        nativeOk = rc == 0;
                        differ.Compare(label, native, OursSide.Run(() => { octx.Clear(new Pmem2BadBlock(off, len)); return Outcome.Ok(); }));
                        NativePmem2.pmem2_badblock_context_delete(ref nctx);
                        NativePmem2.pmem2_source_delete(ref nsrc);
                    }

                    var n = File.ReadAllBytes(nativePath);
                    var o = File.ReadAllBytes(oursPath);
                    differ.Compare(label + " contents", Outcome.Value((ulong)n.Length), Outcome.Value((ulong)o.Length));
                    if (!n.AsSpan().SequenceEqual(o))
                    {
                        differ.Fail($"{label}: file contents differ after clear");
                    }

                    if (nativeOk && len > 0 && off < size && n.AsSpan((int)off, (int)Math.Min(len, size - off)).ContainsAnyExcept((byte)0))
                    {
                        differ.Fail($"{label}: native did not zero the cleared range (test assumption broken)");
                    }
                }
                finally
                {
                    File.Delete(nativePath);
                    File.Delete(oursPath);
                }
            }
        }

        differ.AssertClean(_output, minimumCases: 32);
    }
}
