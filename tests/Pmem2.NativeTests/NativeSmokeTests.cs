using Pmem2.NativeTests.Infrastructure;
using Pmem2.Oracle;

namespace Pmem2.NativeTests;

[Collection(NativeCollection.Name)]
public class NativeSmokeTests
{
    [Fact]
    public void NativeLibraryMapsATemporaryFileAtPageGranularity()
    {
        Assert.True(NativePmem2.IsAvailable, "libpmem2.so.1 is not installed (apt-get install libpmem2)");
        var path = Path.Combine(Path.GetTempPath(), $"pmem2-native-{Guid.NewGuid():N}");
        try
        {
            using (var fs = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite))
            {
                fs.SetLength(16 << 20);
                var rc = NativeMap.TryCreate((int)fs.SafeFileHandle.DangerousGetHandle(), 2, 0, 0, 0, (1u << 30) | (1u << 31), out var map);
                Assert.Equal(0, rc);
                using (map)
                {
                    Assert.Equal((nuint)(16 << 20), map!.Size);
                    Assert.Equal(2, map.Granularity);
                    Assert.Equal(0, map.Address % (2 << 20));
                }
            }
        }
        finally
        {
            File.Delete(path);
        }
    }
}
