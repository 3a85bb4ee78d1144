using System.Net.Sockets;
using Pmem2.NativeTests.Infrastructure;
using Pmem2.Oracle;
using Xunit.Abstractions;

namespace Pmem2.NativeTests;

/// <summary>
/// Differential tests of pmem2_source_from_fd over every kind of descriptor (read-write, read-only,
/// write-only, O_PATH, O_APPEND, closed, negative, directory, character devices, fifo, socket), of the
/// source getters, and of every config setter's validation (including "a failed setter keeps the old value").
/// </summary>
[Collection(NativeCollection.Name)]
public sealed class SourceAndConfigTests
{
    private const int OPath = 0x200000;
    private const int OAppend = 0x400;

    private readonly OracleFiles _files;
    private readonly ITestOutputHelper _output;

    public SourceAndConfigTests(OracleFiles files, ITestOutputHelper output)
    {
        NativeRequirement.Ensure();
        _files = files;
        _output = output;
    }

    [Fact]
    public void SourcesFromEveryKindOfDescriptorMatchNative()
    {
        var differ = new Differ("sources");
        var big = _files[16 * OracleFiles.MiB].Path;
        var fifo = _files.NewPath("fifo");
        NativeLibc.MakeFifo(fifo);

        var cases = new List<(string Label, Func<int> Open)>();
        foreach (var size in OracleFiles.GridSizes)
        {
            var path = _files[size].Path;
            cases.Add(($"O_RDWR file of {Raw.Size(size)}", () => NativeLibc.Open(path, NativeLibc.O_RDWR)));
            cases.Add(($"O_RDONLY file of {Raw.Size(size)}", () => NativeLibc.Open(path, NativeLibc.O_RDONLY)));
        }

        cases.Add(("O_WRONLY file", () => NativeLibc.Open(big, NativeLibc.O_WRONLY)));
        cases.Add(("O_RDWR|O_APPEND file", () => NativeLibc.Open(big, NativeLibc.O_RDWR | OAppend)));
        cases.Add(("O_PATH file", () => NativeLibc.Open(big, OPath)));
        cases.Add(("fd -1", () => -1));
        cases.Add(("fd int.MinValue", () => int.MinValue));
        cases.Add(("fd 999999 (never opened)", () => 999_999));
        cases.Add(("closed fd", () =>
        {
            var fd = NativeLibc.Dup2(_files[16 * OracleFiles.MiB].Fd(false), 1700);
            Assert.Equal(0, NativeLibc.Close(fd));
            return fd;
        }));
        cases.Add(("directory", () => NativeLibc.Open(_files.Directory, NativeLibc.O_RDONLY | NativeLibc.O_DIRECTORY)));
        cases.Add(("/dev/null", () => NativeLibc.Open("/dev/null", NativeLibc.O_RDWR)));
        cases.Add(("/dev/zero", () => NativeLibc.Open("/dev/zero", NativeLibc.O_RDWR)));
        cases.Add(("fifo", () => NativeLibc.Open(fifo, NativeLibc.O_RDWR | NativeLibc.O_NONBLOCK)));

        foreach (var (label, open) in cases)
        {
            var fd = open();
            try
            {
                CompareSource(differ, label, fd, mapAlso: true);
            }
            finally
            {
                if (fd >= 0 && fd != 999_999 && fd != 1700)
                {
                    NativeLibc.Close(fd);
                }
            }
        }

        using (var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            CompareSource(differ, "unix socket", (int)socket.Handle, mapAlso: true);
        }

        differ.AssertClean(_output, minimumCases: 20);
    }

    [Fact]
    public void MappingAfterTheDescriptorIsClosedMatchesNative()
    {
        var differ = new Differ("closed after source");
        var fd = NativeLibc.Dup2(_files[16 * OracleFiles.MiB].Fd(false), 1701);
        var nativeCreate = NativeSide.SourceFromFd(fd, out var nsrc);
        Assert.True(nativeCreate.Succeeded, nativeCreate.ToString());
        var oursCreate = OursSide.SourceFromFd(fd, out var osrc);
        try
        {
            differ.Compare("source before close", nativeCreate, oursCreate, countsAsCombination: false);
            Assert.Equal(0, NativeLibc.Close(fd));
            Assert.False(NativeLibc.IsOpen(fd));
            differ.Compare("pmem2_source_size after close", NativeSide.Size(nsrc), osrc is null ? oursCreate : OursSide.Size(osrc));
            differ.Compare("pmem2_source_alignment after close", NativeSide.Alignment(nsrc), osrc is null ? oursCreate : OursSide.Alignment(osrc));
            differ.Compare("pmem2_source_get_fd after close", NativeSide.GetFd(nsrc), osrc is null ? oursCreate : OursSide.GetFd(osrc));
            foreach (var g in Raw.Granularities)
            {
                var c = new MapCase("closed", "closed fd", 16 * OracleFiles.MiB, 0, 0, g, Raw.Shared, Raw.RW, false, null);
                differ.Compare(c, NativeSide.Map(nsrc, c), osrc is null ? oursCreate : OursSide.Map(osrc, c));
            }
        }
        finally
        {
            NativePmem2.pmem2_source_delete(ref nsrc);
            osrc?.Dispose();
        }

        differ.AssertClean(_output, minimumCases: 7);
    }

    /// <summary>
    /// pmem2_source_numa_node, pmem2_source_device_usc and pmem2_source_device_id on file and anonymous
    /// sources (no NVDIMM region here: DAX_REGION_NOT_FOUND / NOSUPP paths) against native.
    /// </summary>
    [Fact]
    public void NumaNodeUscAndDeviceIdMatchNative()
    {
        var differ = new Differ("numa / usc / device id");
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
                var rc = NativePmem2.pmem2_source_numa_node(nsrc, out var node);
                differ.Compare($"numa_node({label})", rc == 0 ? Outcome.Value((ulong)node) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage()), OursSide.Run(() => Outcome.Value((ulong)osrc.GetNumaNode())));
                NativePmem2.ResetErrorMessage();
                rc = NativePmem2.pmem2_source_device_usc(nsrc, out var usc);
                differ.Compare($"device_usc({label})", rc == 0 ? Outcome.Value(usc) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage()), OursSide.Run(() => Outcome.Value(osrc.GetDeviceUsc())));
                NativePmem2.ResetErrorMessage();
                nuint len = 0;
                rc = NativePmem2.pmem2_source_device_id(nsrc, 0, ref len);
                differ.Compare($"device_id({label})", rc == 0 ? Outcome.Value(len) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage()), OursSide.Run(() => Outcome.Value((ulong)osrc.GetDeviceId().Length + 1)));
            }
            finally
            {
                NativePmem2.pmem2_source_delete(ref nsrc);
            }
        }

        differ.AssertClean(_output, minimumCases: 15);
    }

    /// <summary>pmem2_source_size is live (fstat on every call): growing and shrinking the file shows on both sides.</summary>
    [Fact]
    public void SourceSizeIsLiveOnBothSides()
    {
        var differ = new Differ("live size");
        var path = _files.NewPath("live");
        using var fs = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite);
        fs.SetLength(4096);
        var fd = (int)fs.SafeFileHandle.DangerousGetHandle();
        Assert.True(NativeSide.SourceFromFd(fd, out var nsrc).Succeeded);
        var oursCreate = OursSide.SourceFromFd(fd, out var osrc);
        try
        {
            foreach (var length in new long[] { 4096, 12288, 3 * 4096 + 100, 0, 2 << 20 })
            {
                fs.SetLength(length);
                differ.Compare($"size after truncate to {length}", NativeSide.Size(nsrc), osrc is null ? oursCreate : OursSide.Size(osrc));
                var c = new MapCase("live", "fd", (ulong)length, 0, 0, Raw.Page, Raw.Shared, Raw.RW, false, null);
                differ.Compare(c, NativeSide.Map(nsrc, c), osrc is null ? oursCreate : OursSide.Map(osrc, c));
            }
        }
        finally
        {
            NativePmem2.pmem2_source_delete(ref nsrc);
            osrc?.Dispose();
        }

        differ.AssertClean(_output, minimumCases: 10);
    }

    /// <summary>Every setter with valid and invalid values: same return code and message as native.</summary>
    [Fact]
    public void ConfigSettersValidateLikeNative()
    {
        var differ = new Differ("config setters");
        foreach (var g in new[] { 0, 1, 2, -1, 3, 999, int.MaxValue, int.MinValue })
        {
            differ.Compare($"set_required_store_granularity({g})",
                NativeSetter(cfg => NativePmem2.pmem2_config_set_required_store_granularity(cfg, g)),
                OursSide.Run(() => { new Pmem2Config().RequiredStoreGranularity = (Pmem2Granularity)g; return Outcome.Ok(); }));
        }

        foreach (var s in new[] { 0, 1, -1, 2, 777 })
        {
            differ.Compare($"set_sharing({s})",
                NativeSetter(cfg => NativePmem2.pmem2_config_set_sharing(cfg, s)),
                OursSide.Run(() => { new Pmem2Config().Sharing = (Pmem2Sharing)s; return Outcome.Ok(); }));
        }

        foreach (var p in new[] { Raw.ProtNone, Raw.ProtRead, Raw.ProtWrite, Raw.ProtExec, Raw.RW, Raw.RWX, Raw.ProtRead | Raw.ProtExec, 1u, 2u, 4u, 1u << 28, Raw.RWX | 1u, uint.MaxValue })
        {
            differ.Compare($"set_protection(0x{p:x})",
                NativeSetter(cfg => NativePmem2.pmem2_config_set_protection(cfg, p)),
                OursSide.Run(() => { new Pmem2Config().Protection = (Pmem2Protection)p; return Outcome.Ok(); }));
        }

        foreach (var o in new[] { 0UL, 4096UL, (ulong)long.MaxValue & ~4095UL, (ulong)long.MaxValue, (ulong)long.MaxValue + 1, (ulong)long.MaxValue + 4097, ulong.MaxValue })
        {
            differ.Compare($"set_offset({Raw.Size(o)})",
                NativeSetter(cfg => NativePmem2.pmem2_config_set_offset(cfg, (nuint)o)),
                OursSide.Run(() => { new Pmem2Config().Offset = o; return Outcome.Ok(); }));
        }

        foreach (var l in new[] { 0UL, 4096UL, (ulong)long.MaxValue + 1, ulong.MaxValue })
        {
            differ.Compare($"set_length({Raw.Size(l)})",
                NativeSetter(cfg => NativePmem2.pmem2_config_set_length(cfg, (nuint)l)),
                OursSide.Run(() => { new Pmem2Config().Length = l; return Outcome.Ok(); }));
        }

        differ.AssertClean(_output, minimumCases: 35);
    }

    /// <summary>
    /// A failed setter leaves the previous value in place: checked through the result of a map made with
    /// the config afterwards (offset shows in the size, granularity in success vs GRANULARITY_NOT_SET,
    /// sharing in the effective granularity, protection in NO_ACCESS on a read-only descriptor).
    /// </summary>
    [Fact]
    public void FailedSettersKeepThePreviousValueLikeNative()
    {
        var differ = new Differ("failed setters keep the old value");
        var file = _files[16 * OracleFiles.MiB];
        var steps = new (string Label, bool ReadOnly, Func<nint, int> Native, Action<Pmem2Config> Ours)[]
        {
            ("offset 4096 then INT64_MAX+1", false,
                cfg => NativePmem2.pmem2_config_set_offset(cfg, 4096) | NativePmem2.pmem2_config_set_offset(cfg, unchecked((nuint)((ulong)long.MaxValue + 1))),
                cfg => { cfg.Offset = 4096; TrySet(() => cfg.Offset = (ulong)long.MaxValue + 1); }),
            ("offset 4096 then UINT64_MAX", false,
                cfg => NativePmem2.pmem2_config_set_offset(cfg, 4096) | NativePmem2.pmem2_config_set_offset(cfg, nuint.MaxValue),
                cfg => { cfg.Offset = 4096; TrySet(() => cfg.Offset = ulong.MaxValue); }),
            ("granularity BYTE then 999", false,
                cfg => NativePmem2.pmem2_config_set_required_store_granularity(cfg, 0) | NativePmem2.pmem2_config_set_required_store_granularity(cfg, 999),
                cfg => { cfg.RequiredStoreGranularity = Pmem2Granularity.Byte; TrySet(() => cfg.RequiredStoreGranularity = (Pmem2Granularity)999); }),
            ("sharing PRIVATE then 777", false,
                cfg => NativePmem2.pmem2_config_set_sharing(cfg, 1) | NativePmem2.pmem2_config_set_sharing(cfg, 777),
                cfg => { cfg.Sharing = Pmem2Sharing.Private; TrySet(() => cfg.Sharing = (Pmem2Sharing)777); }),
            ("protection READ then raw PROT_WRITE (2)", true,
                cfg => NativePmem2.pmem2_config_set_protection(cfg, Raw.ProtRead) | NativePmem2.pmem2_config_set_protection(cfg, 2),
                cfg => { cfg.Protection = Pmem2Protection.Read; TrySet(() => cfg.Protection = (Pmem2Protection)2); }),
            ("protection READ then RWX|1", true,
                cfg => NativePmem2.pmem2_config_set_protection(cfg, Raw.ProtRead) | NativePmem2.pmem2_config_set_protection(cfg, Raw.RWX | 1),
                cfg => { cfg.Protection = Pmem2Protection.Read; TrySet(() => cfg.Protection = (Pmem2Protection)(Raw.RWX | 1)); }),
        };

        foreach (var (label, readOnly, nativeSteps, oursSteps) in steps)
        {
            foreach (var granularity in new int?[] { null, Raw.Page })
            {
                var caseLabel = $"{label}, then {(granularity is null ? "no granularity" : "PAGE")} and map ({(readOnly ? "O_RDONLY" : "O_RDWR")})";
                // Native.
                Assert.True(NativeSide.SourceFromFd(file.Fd(readOnly), out var nsrc).Succeeded);
                Assert.Equal(0, NativePmem2.pmem2_config_new(out var cfg));
                Outcome native;
                try
                {
                    Assert.NotEqual(0, nativeSteps(cfg));
                    if (granularity is { } g && !label.StartsWith("granularity", StringComparison.Ordinal))
                    {
                        Assert.Equal(0, NativePmem2.pmem2_config_set_required_store_granularity(cfg, g));
                    }

                    NativePmem2.ResetErrorMessage();
                    var rc = NativePmem2.pmem2_map_new(out var map, cfg, nsrc);
                    if (rc == 0)
                    {
                        using var m = new NativeMap(map);
                        native = Outcome.Mapped(m.Size, m.Granularity, m.Address);
                    }
                    else
                    {
                        native = Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                    }
                }
                finally
                {
                    NativePmem2.pmem2_config_delete(ref cfg);
                    NativePmem2.pmem2_source_delete(ref nsrc);
                }

                // Ours.
                var ours = OursSide.Run(() =>
                {
                    using var src = Pmem2Source.FromHandle(readOnly ? file.ReadOnly : file.ReadWrite);
                    var config = new Pmem2Config();
                    oursSteps(config);
                    if (granularity is { } g && !label.StartsWith("granularity", StringComparison.Ordinal))
                    {
                        config.RequiredStoreGranularity = (Pmem2Granularity)g;
                    }

                    using var map = Pmem2Map.Create(config, src);
                    return Outcome.Mapped(map.Size, (int)map.StoreGranularity, map.Address);
                });
                differ.Compare(caseLabel, native, ours);
            }
        }

        differ.AssertClean(_output, minimumCases: 12);
    }

    private static void TrySet(Action set)
    {
        try
        {
            set();
        }
        catch (Pmem2Exception)
        {
        }
    }

    private static Outcome NativeSetter(Func<nint, int> set)
    {
        Assert.Equal(0, NativePmem2.pmem2_config_new(out var cfg));
        try
        {
            NativePmem2.ResetErrorMessage();
            var rc = set(cfg);
            return rc == 0 ? Outcome.Ok() : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
        }
        finally
        {
            NativePmem2.pmem2_config_delete(ref cfg);
        }
    }

    private static void CompareSource(Differ differ, string label, int fd, bool mapAlso)
    {
        var native = NativeSide.SourceFromFd(fd, out var nsrc);
        var ours = OursSide.SourceFromFd(fd, out var osrc);
        try
        {
            differ.Compare($"pmem2_source_from_fd({label})", native, ours);
            if (!native.Succeeded || osrc is null)
            {
                return;
            }

            differ.Compare($"pmem2_source_size({label})", NativeSide.Size(nsrc), OursSide.Size(osrc));
            differ.Compare($"pmem2_source_alignment({label})", NativeSide.Alignment(nsrc), OursSide.Alignment(osrc));
            differ.Compare($"pmem2_source_get_fd({label})", NativeSide.GetFd(nsrc), OursSide.GetFd(osrc));
            if (mapAlso)
            {
                foreach (var sharing in Raw.Sharings)
                {
                    foreach (var prot in new[] { Raw.RW, Raw.ProtRead })
                    {
                        var c = new MapCase("sources", label, 0, 0, 0, Raw.Page, sharing, prot, false, null);
                        differ.Compare(c, NativeSide.Map(nsrc, c), OursSide.Map(osrc, c));
                    }
                }
            }
        }
        finally
        {
            if (nsrc != 0)
            {
                NativePmem2.pmem2_source_delete(ref nsrc);
            }

            osrc?.Dispose();
        }
    }
}
