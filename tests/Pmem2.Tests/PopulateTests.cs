using System.Globalization;

namespace Pmem2.Tests;

/// <summary>
/// <see cref="Pmem2Map.Populate"/> on real tmpfs files: after it, storing to every page of the range takes
/// (almost) no minor page faults, where the same stores to a fresh mapping take one per 4 KiB page
/// (counted in /proc/thread-self/stat, this thread only); the bytes are unchanged; a read-only map is
/// populated for reading; a range past the map is refused; a range the file no longer backs is an error.
/// </summary>
public sealed class PopulateTests
{
    private const ulong Size = 32UL << 20;
    private const long Pages = (long)(Size / 4096);

    [Fact]
    public void Populated_range_takes_no_fault_per_page_and_keeps_the_bytes()
    {
        using var file = new ShmFile(Size);
        var pattern = new byte[1 << 20];
        new Random(7).NextBytes(pattern);
        using (var writer = file.Map())
        {
            for (ulong offset = 0; offset < Size; offset += (ulong)pattern.Length)
            {
                writer.Map.Memcpy(offset, pattern);
            }
        }

        // A fresh mapping of a file whose pages are all in the page cache: one fault per page on first store.
        var unpopulated = StoreFaults(file, populate: false);
        Assert.True(unpopulated >= Pages / 2, $"{unpopulated} minor faults storing to {Pages} pages of a fresh mapping");

        var populated = StoreFaults(file, populate: true);
        Assert.True(populated < Pages / 16, $"{populated} minor faults storing to {Pages} populated pages (fresh mapping: {unpopulated})");

        // Populate changed no byte: every page start holds the store, every other byte the pattern.
        using var reader = file.Map();
        var back = new byte[pattern.Length];
        reader.Map.Read(Size - (ulong)back.Length, back);
        var expected = (byte[])pattern.Clone();
        for (var page = 0; page < expected.Length; page += 4096)
        {
            BitConverter.TryWriteBytes(expected.AsSpan(page, 8), 0x0102030405060708L);
        }

        Assert.Equal(expected, back);
    }

    [Fact]
    public void Read_only_map_is_populated_for_reading()
    {
        using var file = new ShmFile(Size);
        using var source = Pmem2Source.Open(file.Path, FileAccess.Read);
        using var map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, Protection = Pmem2Protection.Read }, source);
        Assert.True(map.Populate(0, map.Size));
        var before = MinorFaults();
        var one = new byte[1];
        for (ulong offset = 0; offset < Size; offset += 4096)
        {
            map.Read(offset, one);
        }

        // (Read faults on a fresh file mapping map up to 16 pages each (fault-around): ~Pages/16 without populate.)
        var faults = MinorFaults() - before;
        Assert.True(faults < Pages / 64, $"{faults} minor faults reading {Pages} populated pages");
    }

    [Fact]
    public void Range_checks_and_empty_range()
    {
        using var file = new ShmFile(Size);
        using var mapped = file.Map();
        var map = mapped.Map;
        Assert.True(map.Populate(Size, 0));
        Assert.True(map.Populate(123, 4000)); // unaligned start: the page around it is populated
        Assert.ThrowsAny<ArgumentException>(() => map.Populate(Size - 4096, 8192));
        Assert.ThrowsAny<ArgumentException>(() => map.Populate(ulong.MaxValue - 10, 20));
    }

    [Fact]
    public void Range_past_a_truncated_file_is_an_error_not_a_crash()
    {
        using var file = new ShmFile(Size);
        using var mapped = file.Map();
        var map = mapped.Map;
        using (var truncate = File.OpenHandle(file.Path, FileMode.Open, FileAccess.ReadWrite))
        {
            RandomAccess.SetLength(truncate, (long)(Size / 2));
        }

        Assert.True(map.Populate(0, Size / 2));
        var e = Assert.Throws<Pmem2Exception>(() => map.Populate(0, Size));
        Assert.Contains("madvise", e.Message, StringComparison.Ordinal);
    }

    private static long StoreFaults(ShmFile file, bool populate)
    {
        using var mapped = file.Map();
        var map = mapped.Map;
        if (populate)
        {
            Assert.True(map.Populate(0, map.Size), "MADV_POPULATE_WRITE (Linux 5.14+)");
        }

        var before = MinorFaults();
        for (ulong offset = 0; offset < Size; offset += 4096)
        {
            map.AtomicStore64(offset, 0x0102030405060708); // one store per page (persisting 8 bytes: msync of one page)
        }

        return MinorFaults() - before;
    }

    /// <summary>minflt of this thread (field 10 of /proc/thread-self/stat).</summary>
    private static long MinorFaults()
    {
        var stat = File.ReadAllText("/proc/thread-self/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return long.Parse(fields[7], CultureInfo.InvariantCulture); // fields after "(comm)": state=3rd overall, minflt=10th
    }

    private sealed class ShmFile : IDisposable
    {
        public ShmFile(ulong size)
        {
            Path = System.IO.Path.Combine("/dev/shm", $"pmem2-populate-{Guid.NewGuid():N}");
            using var handle = File.OpenHandle(Path, FileMode.CreateNew, FileAccess.ReadWrite);
            Pmem2Files.Allocate(handle, size);
        }

        public string Path { get; }

        public MappedFile Map() => new(Path);

        public void Dispose() => File.Delete(Path);
    }

    /// <summary>A source and its map, disposed together (map first).</summary>
    private sealed class MappedFile : IDisposable
    {
        private readonly Pmem2Source _source;

        public MappedFile(string path)
        {
            _source = Pmem2Source.Open(path);
            Map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page }, _source);
        }

        public Pmem2Map Map { get; }

        public void Dispose()
        {
            Map.Dispose();
            _source.Dispose();
        }
    }
}
