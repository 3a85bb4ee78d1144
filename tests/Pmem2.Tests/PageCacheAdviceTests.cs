using System.Globalization;
using PmemTests.Shared;

namespace Pmem2.Tests;

/// <summary>
/// <see cref="Pmem2Config.PageCacheAdvice"/> on a real ext4/xfs file (the temp directory's filesystem):
/// with <see cref="Pmem2PageCacheAdvice.Random"/> a persisted 4 KiB write sends about 4 KiB to the block
/// layer (write_bytes of /proc/thread-self/io counts the msync writeback this thread does; per thread, so tests running in parallel do not add to it), whatever folio
/// size the kernel would otherwise pick; the data is there afterwards.
/// </summary>
public sealed class PageCacheAdviceTests
{
    [Fact]
    public void Default_is_no_advice_and_the_property_round_trips()
    {
        var config = new Pmem2Config();
        Assert.Equal(Pmem2PageCacheAdvice.Default, config.PageCacheAdvice);
        config.PageCacheAdvice = Pmem2PageCacheAdvice.Random;
        Assert.Equal(Pmem2PageCacheAdvice.Random, config.PageCacheAdvice);
    }

    [Fact]
    public void Random_advice_writes_back_only_the_persisted_pages()
    {
        var path = Path.Combine(Path.GetTempPath(), $"pmem2-advice-{Guid.NewGuid():N}");
        const ulong Size = 16UL << 20;
        try
        {
            using var handle = File.OpenHandle(path, FileMode.CreateNew, FileAccess.ReadWrite);
            Pmem2Files.Allocate(handle, Size);
            using var source = Pmem2Source.FromHandle(handle);
            using var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, PageCacheAdvice = Pmem2PageCacheAdvice.Random }, source);
            Assert.Equal(Pmem2Granularity.Page, map.StoreGranularity);

            // First touch of every page through the advised mapping, made persistent.
            var fill = new byte[1 << 20];
            new Random(1).NextBytes(fill);
            for (ulong offset = 0; offset < Size; offset += (ulong)fill.Length)
            {
                map.Memcpy(offset, fill);
            }

            // One page each (plus slack for a filesystem that writes a little metadata in our context);
            // a 2 MiB folio would make it hundreds of KiB.
            PersistedPages.AssertWriteBackPerPersistAtMost(map, 16 * 1024, seed: 2);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
