using Pmem2.Internal;

namespace Pmem2.Tests;

/// <summary>Issue 15 item 4: offset-to-offset Memcpy, lease-scoped views, explicit descriptor ownership.</summary>
public sealed class ApiEdgeTests
{
    [Fact]
    public void MemcpyBetweenOffsetsOfOneMapCopiesAndChecksBounds()
    {
        using var file = new TempFile(64 * 1024);
        using var src = file.OpenSource();
        using var map = Pmem2Map.Create(T.Config(), src);
        var pattern = Enumerable.Range(0, 8192).Select(i => (byte)(i * 7 + 3)).ToArray();
        map.Memcpy(0, pattern);
        map.Memcpy(32 * 1024, 0, 8192);
        var back = new byte[8192];
        map.Read(32 * 1024, back);
        Assert.Equal(pattern, back);

        // Overlapping forward by 1 byte: memmove semantics, like libpmem2's memcpy_fn.
        map.Memcpy(1, 0, 8192, Pmem2MemFlags.NonTemporal);
        map.Read(1, back);
        Assert.Equal(pattern, back);

        Assert.Throws<ArgumentOutOfRangeException>(() => map.Memcpy(60 * 1024, 0, 8192));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Memcpy(0, 60 * 1024, 8192));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.Memcpy(0, 0, ulong.MaxValue));

        using var ro = file.OpenSource(FileAccess.Read);
        using var roMap = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, Protection = Pmem2Protection.Read }, ro);
        Assert.Throws<UnauthorizedAccessException>(() => roMap.Memcpy(0, 4096, 16));
    }

    [Fact]
    public void UpdatePersistsAndViewReadsUnderALease()
    {
        using var file = new TempFile(64 * 1024);
        using var src = file.OpenSource();
        var map = Pmem2Map.Create(T.Config(), src);
        using (var counters = Pmem2Diagnostics.BeginCounting())
        {
            map.Update(4096, 16, span => span.Fill(0x5A));
            Assert.True(counters.Msync >= 1, "Update did not persist the range (PAGE: msync)");
            counters.Reset();
            map.Update(8192, 4, 0x01020304, static (span, v) => BitConverter.TryWriteBytes(span, v), persist: false);
            Assert.Equal(0, counters.Msync);
        }

        Assert.Equal(16 * 0x5A, map.View(4096, 16, span => span.ToArray().Sum(b => b)));
        Assert.Equal(0x01020304, map.View(8192, 4, span => BitConverter.ToInt32(span)));
        Assert.Throws<ArgumentOutOfRangeException>(() => map.View(64 * 1024 - 2, 4, span => 0));

        // Disposing inside the callback: the view stays mapped until the callback returns.
        map.Update(0, 4096, span =>
        {
            map.Dispose();
            span.Fill(0x11);
            Assert.Equal(0x11, span[4095]);
        }, persist: false);
        Assert.True(map.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => map.View(0, 1, span => span[0]));
        Assert.Throws<ObjectDisposedException>(() => map.Update(0, 1, span => { }));
        Assert.Equal(0x11, File.ReadAllBytes(file.Path)[100]);
    }

    [Fact]
    public void DescriptorOwnershipIsExplicit()
    {
        using var file = new TempFile(4096);
        var owned = Internal.Interop.LibC.open(file.Path, Internal.Interop.LibC.O_RDWR | Internal.Interop.LibC.O_CLOEXEC, 0);
        var fd = (int)owned.DangerousGetHandle();
        owned.SetHandleAsInvalid(); // hand the raw number over
        var src = Pmem2Source.FromOwnedFileDescriptor(fd);
        Assert.True(src.OwnsDescriptor);
        Assert.True(FdOpen(fd));
        src.Dispose();
        Assert.False(FdOpen(fd));

        using var handle = file.OpenHandle();
        var borrowedFd = (int)handle.DangerousGetHandle();
        var borrowed = Pmem2Source.FromBorrowedFileDescriptor(borrowedFd);
        Assert.False(borrowed.OwnsDescriptor);
        borrowed.Dispose();
        Assert.True(FdOpen(borrowedFd));

        var transferred = Pmem2Source.FromHandle(file.OpenHandle(), transferOwnership: true);
        var transferredFd = (int)transferred.Handle!.DangerousGetHandle();
        Assert.True(transferred.OwnsDescriptor);
        transferred.Dispose();
        Assert.False(FdOpen(transferredFd));

        // Ownership passes only on success: a directory is refused and its descriptor stays open.
        var dir = Internal.Interop.LibC.open(Path.GetTempPath(), Internal.Interop.LibC.O_RDONLY | Internal.Interop.LibC.O_CLOEXEC, 0);
        try
        {
            var dirFd = (int)dir.DangerousGetHandle();
            T.Fails(Pmem2ErrorCode.InvalidFileType, () => Pmem2Source.FromOwnedFileDescriptor(dirFd));
            GC.Collect();
            GC.WaitForPendingFinalizers();
            Assert.True(FdOpen(dirFd));
        }
        finally
        {
            dir.Dispose();
        }
    }

    private static bool FdOpen(int fd) => Path.Exists($"/proc/self/fd/{fd}");
}

/// <summary>PMEM2_FORCE_GRANULARITY is read from libc's environment, like libpmem2's secure_getenv.</summary>
[Collection(EnvironmentCollection.Name)]
public sealed class ForcedGranularityEnvironmentTests
{
    [Fact]
    public void NativeSetenvIsSeenAndDotnetOnlyVariablesAreNot()
    {
        Assert.False(ProcessEnvironment.IsSecureExecution);
        var previousManaged = Environment.GetEnvironmentVariable(GranularityPolicy.ForceVariable);
        var previousNative = Oracle.NativePmem2.GetNativeEnvironment(GranularityPolicy.ForceVariable);
        using var file = new TempFile(1 << 20);
        using var src = file.OpenSource();
        try
        {
            Oracle.NativePmem2.SetLibcEnvironmentOnly(GranularityPolicy.ForceVariable, "CACHE_LINE");
            Environment.SetEnvironmentVariable(GranularityPolicy.ForceVariable, null);
            using (var map = Pmem2Map.Create(T.Config(), src))
            {
                Assert.Equal(Pmem2Granularity.CacheLine, map.StoreGranularity);
            }

            Oracle.NativePmem2.SetLibcEnvironmentOnly(GranularityPolicy.ForceVariable, null);
            Environment.SetEnvironmentVariable(GranularityPolicy.ForceVariable, "CACHE_LINE");
            using (var map = Pmem2Map.Create(T.Config(), src))
            {
                Assert.Equal(Pmem2Granularity.Page, map.StoreGranularity);
            }
        }
        finally
        {
            Environment.SetEnvironmentVariable(GranularityPolicy.ForceVariable, previousManaged);
            Oracle.NativePmem2.SetLibcEnvironmentOnly(GranularityPolicy.ForceVariable, previousNative);
        }
    }
}
