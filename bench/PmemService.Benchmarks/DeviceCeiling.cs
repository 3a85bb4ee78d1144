using System.Diagnostics;
using Pmem2;

namespace PmemService.Benchmarks;

/// <summary>
/// The device ceiling of the PAGE unary rows (<c>--device</c>): what the disk and kernel do without gRPC.
/// A 64 MiB file next to the PAGE pool, mapped by Pmem2 as the service maps regions (PAGE,
/// <see cref="Pmem2PageCacheAdvice.Random"/>, prefilled), and C dedicated threads, each in a loop a
/// 4 KiB persisting memcpy (copy + msync of that page) at a random 4 KiB offset in the first 32 MiB,
/// the same access pattern as the rows' callers. Each write has its own msync, C of them in flight: the
/// most durable 4 KiB writes per second this device gives C concurrent writers.
/// </summary>
internal sealed class DeviceCeiling : IDisposable
{
    private const long FileSize = 64L << 20;
    private readonly string _path;
    private readonly Microsoft.Win32.SafeHandles.SafeFileHandle _file;
    private readonly Pmem2Map _map;

    public DeviceCeiling(string directory)
    {
        Directory.CreateDirectory(directory);
        _path = Path.Combine(directory, "device-ceiling.bin");
        _file = File.OpenHandle(_path, FileMode.Create, FileAccess.ReadWrite);
        Pmem2Files.Allocate(_file, (ulong)FileSize);
        using var source = Pmem2Source.FromHandle(_file);
        _map = Pmem2Map.Create(new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, PageCacheAdvice = Pmem2PageCacheAdvice.Random }, source);
        var fill = new byte[1 << 20];
        Random.Shared.NextBytes(fill);
        for (long o = 0; o < FileSize; o += fill.Length)
        {
            _map.Memcpy((ulong)o, fill);
        }
    }

    public Sample Run(int concurrency, TimeSpan duration)
    {
        var latencies = new List<double>[concurrency];
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var started = Stopwatch.GetTimestamp();
        var threads = Enumerable.Range(0, concurrency).Select(w => new Thread(() =>
        {
            var mine = latencies[w] = new List<double>(4096);
            var data = new byte[4096];
            Random.Shared.NextBytes(data);
            var random = new Random(w);
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var offset = (ulong)random.Next(0, Load.UnarySpan / 4096) * 4096;
                var start = Stopwatch.GetTimestamp();
                _map.Memcpy(offset, data);
                mine.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
            }
        }) { IsBackground = true }).ToList();
        threads.ForEach(t => t.Start());
        threads.ForEach(t => t.Join());
        var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
        var all = latencies.SelectMany(l => l).ToArray();
        return new Sample(seconds, all.Length * 4096L, all.Length, 0, 0, all);
    }

    public void Dispose()
    {
        _map.Dispose();
        _file.Dispose();
        if (File.Exists(_path))
        {
            File.Delete(_path);
        }
    }
}
