namespace Pmem2.Tests;

/// <summary><see cref="Pmem2FileAttributes"/> on real files on tmpfs (/dev/shm) and on the temp directory's filesystem.</summary>
public sealed class FileAttributesTests
{
    public static TheoryData<string> Roots => new() { "/dev/shm", Path.GetTempPath() };

    [Theory]
    [MemberData(nameof(Roots))]
    public void Set_get_remove_round_trip_and_follow_renames(string root)
    {
        var path = Path.Combine(root, $"pmem2-xattr-{Guid.NewGuid():N}");
        var moved = path + ".moved";
        try
        {
            using (var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                Assert.Null(Pmem2FileAttributes.Get(handle, "user.pmem.test"));
                Pmem2FileAttributes.Set(handle, "user.pmem.test", "v1 123 00ff"u8);
                Assert.Equal("v1 123 00ff"u8.ToArray(), Pmem2FileAttributes.Get(handle, "user.pmem.test"));

                var large = new byte[1000]; // larger than the first read buffer
                new Random(1).NextBytes(large);
                Pmem2FileAttributes.Set(handle, "user.pmem.large", large);
                Assert.Equal(large, Pmem2FileAttributes.Get(handle, "user.pmem.large"));
            }

            File.Move(path, moved);
            using (var handle = File.OpenHandle(moved, FileMode.Open, FileAccess.Read))
            {
                Assert.Equal("v1 123 00ff"u8.ToArray(), Pmem2FileAttributes.Get(handle, "user.pmem.test"));
                Assert.True(Pmem2FileAttributes.Remove(handle, "user.pmem.test"));
                Assert.False(Pmem2FileAttributes.Remove(handle, "user.pmem.test"));
                Assert.Null(Pmem2FileAttributes.Get(handle, "user.pmem.test"));
            }
        }
        finally
        {
            File.Delete(path);
            File.Delete(moved);
        }
    }

    [Fact]
    public void A_namespace_the_kernel_rejects_is_a_negated_errno()
    {
        var path = Path.Combine("/dev/shm", $"pmem2-xattr-{Guid.NewGuid():N}");
        try
        {
            using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite);
            var e = Assert.Throws<Pmem2Exception>(() => Pmem2FileAttributes.Set(handle, "bogus.pmem", "x"u8));
            Assert.Equal(95, e.Errno); // EOPNOTSUPP: no such attribute namespace
            Assert.StartsWith("fsetxattr", e.Message, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
