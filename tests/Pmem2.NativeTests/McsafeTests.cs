using System.Runtime.InteropServices;
using Pmem2.NativeTests.Infrastructure;
using Pmem2.Oracle;
using Xunit.Abstractions;

namespace Pmem2.NativeTests;

/// <summary>
/// pmem2_source_pread_mcsafe / pwrite_mcsafe on regular files against native: file size x offset x
/// length, for reads (same code and bytes) and writes (same code; the two files, identical before,
/// stay identical), plus anonymous and read-only sources.
/// </summary>
[Collection(NativeCollection.Name)]
public sealed class McsafeTests
{
    private readonly OracleFiles _files;
    private readonly ITestOutputHelper _output;

    public McsafeTests(OracleFiles files, ITestOutputHelper output)
    {
        NativeRequirement.Ensure();
        _files = files;
        _output = output;
    }

    [Fact]
    public void McsafeReadsAndWritesMatchNative()
    {
        var differ = new Differ("mcsafe");
        var byDesign = new List<string>();
        foreach (var size in new ulong[] { 0, 3 * 1024, 16 * 1024 })
        {
            var initial = MemCases.Pattern(size, (int)size + 3);
            var nativePath = _files.NewPath("mcsafe-native");
            var oursPath = _files.NewPath("mcsafe-ours");
            File.WriteAllBytes(nativePath, initial);
            File.WriteAllBytes(oursPath, initial);
            try
            {
                using var nh = File.OpenHandle(nativePath, FileMode.Open, FileAccess.ReadWrite);
                using var oh = File.OpenHandle(oursPath, FileMode.Open, FileAccess.ReadWrite);
                Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var nsrc, (int)nh.DangerousGetHandle()));
                using var osrc = Pmem2Source.FromHandle(oh);
                try
                {
                    ulong[] offsets = [0, 1, 4096, size == 0 ? 0 : size - 1, size, size + 1, 2 * size + 8192, (ulong)long.MaxValue + 1, ulong.MaxValue];
                    ulong[] lengths = [0, 1, 100, 4096, size, size + 1];
                    foreach (var off in offsets.Distinct())
                    {
                        foreach (var len in lengths.Distinct())
                        {
                            foreach (var write in new[] { false, true })
                            {
                                var label = $"{(write ? "pwrite" : "pread")}_mcsafe(file of {Raw.Size(size)}, offset {Raw.Size(off)}, length {Raw.Size(len)})";
                                var data = write ? MemCases.Pattern(len, (int)(off % 1000) + (int)len) : new byte[len];
                                var nativeBuf = (byte[])data.Clone();
                                var pin = GCHandle.Alloc(nativeBuf, GCHandleType.Pinned);
                                int rc;
                                NativePmem2.ResetErrorMessage();
                                try
                                {
                                    rc = write
                                        ? NativePmem2.pmem2_source_pwrite_mcsafe(nsrc, pin.AddrOfPinnedObject(), (nuint)len, (nuint)off)
                                        : NativePmem2.pmem2_source_pread_mcsafe(nsrc, pin.AddrOfPinnedObject(), (nuint)len, (nuint)off);
                                }
                                finally
                                {
                                    pin.Free();
                                }

                                var native = rc == 0 ? Outcome.Value(Checksum(nativeBuf)) : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                                var oursBuf = (byte[])data.Clone();
                                var ours = OursSide.Run(() =>
                                {
                                    if (write)
                                    {
                                        osrc.PwriteMcsafe(oursBuf, off);
                                    }
                                    else
                                    {
                                        osrc.PreadMcsafe(oursBuf, off);
                                    }

                                    return Outcome.Value(Checksum(oursBuf));
                                });

                                // libpmem2 checks only "length > size - offset" in unsigned arithmetic, so an offset
                                // past the end passes its check; ours refuses it (documented in Pmem2Source).
                                if (off > size && ours.Code == (int)Pmem2ErrorCode.LengthOutOfRange && native.Code != ours.Code)
                                {
                                    byDesign.Add($"{label}: native {native}, ours {ours}");
                                    RestoreFile(nativePath, File.ReadAllBytes(oursPath)); // undo native's write past the end
                                    continue;
                                }

                                differ.Compare(label, native, ours);
                                var nf = File.ReadAllBytes(nativePath);
                                var of = File.ReadAllBytes(oursPath);
                                if (!nf.AsSpan().SequenceEqual(of))
                                {
                                    differ.Fail($"{label}: files differ afterwards (native {nf.Length} bytes, ours {of.Length} bytes)");
                                    RestoreFile(oursPath, nf);
                                }
                            }
                        }
                    }
                }
                finally
                {
                    NativePmem2.pmem2_source_delete(ref nsrc);
                }
            }
            finally
            {
                File.Delete(nativePath);
                File.Delete(oursPath);
            }
        }

        // Anonymous sources, and writes through a read-only descriptor.
        Assert.Equal(0, NativePmem2.pmem2_source_from_anon(out var asrc, 4096));
        using (var oanon = Pmem2Source.FromAnonymous(4096))
        {
            var buf = new byte[16];
            var pin = GCHandle.Alloc(buf, GCHandleType.Pinned);
            try
            {
                foreach (var write in new[] { false, true })
                {
                    NativePmem2.ResetErrorMessage();
                    var rc = write ? NativePmem2.pmem2_source_pwrite_mcsafe(asrc, pin.AddrOfPinnedObject(), 16, 0) : NativePmem2.pmem2_source_pread_mcsafe(asrc, pin.AddrOfPinnedObject(), 16, 0);
                    var native = rc == 0 ? Outcome.Ok() : Outcome.Failed(rc, NativePmem2.TryGetFreshErrorMessage());
                    differ.Compare($"{(write ? "pwrite" : "pread")}_mcsafe(anonymous)", native, OursSide.Run(() =>
                    {
                        if (write)
                        {
                            oanon.PwriteMcsafe(buf, 0);
                        }
                        else
                        {
                            oanon.PreadMcsafe(buf, 0);
                        }

                        return Outcome.Ok();
                    }));
                }

                var file = _files[16 * OracleFiles.MiB];
                Assert.Equal(0, NativePmem2.pmem2_source_from_fd(out var rsrc, file.Fd(readOnly: true)));
                using var orsrc = Pmem2Source.FromHandle(file.ReadOnly);
                NativePmem2.ResetErrorMessage();
                var wrc = NativePmem2.pmem2_source_pwrite_mcsafe(rsrc, pin.AddrOfPinnedObject(), 16, 0);
                NativePmem2.pmem2_source_delete(ref rsrc);
                differ.Compare("pwrite_mcsafe(O_RDONLY file)", wrc == 0 ? Outcome.Ok() : Outcome.Failed(wrc, NativePmem2.TryGetFreshErrorMessage()), OursSide.Run(() => { orsrc.PwriteMcsafe(buf, 0); return Outcome.Ok(); }));
            }
            finally
            {
                pin.Free();
                NativePmem2.pmem2_source_delete(ref asrc);
            }
        }

        _output.WriteLine($"by-design differences (offset past the end): {byDesign.Count}");
        foreach (var d in byDesign.Take(10))
        {
            _output.WriteLine("  " + d);
        }

        differ.AssertClean(_output, minimumCases: 100);
    }

    private static ulong Checksum(byte[] data) => BitConverter.ToUInt64(System.Security.Cryptography.SHA256.HashData(data));

    private static void RestoreFile(string path, byte[] contents)
    {
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.SetLength(0);
        fs.Write(contents);
    }
}
