using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Pmem2;
using Pmem2.Oracle;

namespace PmemService.Benchmarks;

/// <summary>
/// Item 3 of issue 10: what an msync of one 4 KiB page costs on ext4 depending on the page-cache folio
/// size behind the mapping. Three fresh, fully allocated files (one per variant, so no variant inherits
/// another's page-cache folios): native libpmem2, ours with default settings (as libpmem2), ours with
/// <see cref="Pmem2PageCacheAdvice.Random"/>. Each is prefilled through its own mapping (memcpy of the
/// whole file + persist: that first touch decides the folio size), then the rounds interleave the
/// variants: OPS random 4 KiB-aligned memcpy + persist (msync) each.
/// </summary>
internal static class Folio
{
    public static int Run(string[] args)
    {
        var rounds = ModeArgs.Int(args, 1, 7);
        var ops = ModeArgs.Int(args, 2, 100);
        var dir = args.Length > 3 ? args[3] : "/var/tmp";
        const long FileSize = 64L << 20;
        var root = Path.Combine(dir, "pmemfolio-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(root);
        Console.WriteLine($"folio: {rounds} interleaved rounds of {ops} random 4 KiB memcpy+persist per variant, {FileSize >> 20} MiB files under {root}; load {LoadAverage()}");
        var source = new byte[4096];
        Random.Shared.NextBytes(source);
        var fill = new byte[1 << 20];
        Random.Shared.NextBytes(fill);
        var handle = GCHandle.Alloc(source, GCHandleType.Pinned);
        var fillHandle = GCHandle.Alloc(fill, GCHandleType.Pinned);
        try
        {
            var variants = new List<(string Name, Action<long> Write, Action<long, nint, byte[]> WriteLarge, Action Dispose)>();

            // Native libpmem2 (PAGE: memcpy then msync inside memcpy_fn).
            var nativeFile = NewFile(root, "native", FileSize);
            if (NativeMap.TryCreate((int)nativeFile.DangerousGetHandle(), 2 /* PMEM2_GRANULARITY_PAGE */, 0, 0, 0 /* SHARED */, (1U << 30) | (1U << 31) /* PROT_READ | PROT_WRITE */, out var native) != 0 || native is null)
            {
                throw new InvalidOperationException("native pmem2_map_new failed: " + NativePmem2.ErrorMessage());
            }

            var prefill = new List<(string, double)>();
            var watch0 = Stopwatch.StartNew();
            for (long o = 0; o < FileSize; o += fill.Length)
            {
                native.Memcpy(native.Address + (nint)o, fillHandle.AddrOfPinnedObject(), (nuint)fill.Length, 0);
            }

            prefill.Add(("native libpmem2", FileSize / watch0.Elapsed.TotalSeconds / 1e6));

            variants.Add(("native libpmem2", offset => native.Memcpy(native.Address + (nint)offset, handle.AddrOfPinnedObject(), 4096, 0),
                (offset, pointer, bytes) => native.Memcpy(native.Address + (nint)offset, pointer, (nuint)bytes.Length, 0),
                () => { native.Dispose(); nativeFile.Dispose(); }));
            foreach (var advice in new[] { Pmem2PageCacheAdvice.Default, Pmem2PageCacheAdvice.Random })
            {
                var file = NewFile(root, advice.ToString(), FileSize);
                using var src = Pmem2Source.FromHandle(file);
                var config = new Pmem2Config { RequiredStoreGranularity = Pmem2Granularity.Page, PageCacheAdvice = advice };
                var map = Pmem2Map.Create(config, src);
                var watch1 = Stopwatch.StartNew();
                for (long o = 0; o < FileSize; o += fill.Length)
                {
                    map.Memcpy((ulong)o, fill);
                }

                prefill.Add(($"ours, PageCacheAdvice.{advice}", FileSize / watch1.Elapsed.TotalSeconds / 1e6));

                variants.Add(($"ours, PageCacheAdvice.{advice}", offset => map.Memcpy((ulong)offset, source), (offset, _, bytes) => map.Memcpy((ulong)offset, bytes), () => { map.Dispose(); file.Dispose(); }));
            }

            var perOp = variants.Select(_ => new List<double>()).ToArray();
            var bytesPerOp = variants.Select(_ => new List<double>()).ToArray();
            var random = new Random(42);
            for (var round = 0; round < rounds; round++)
            {
                var offsets = Enumerable.Range(0, ops).Select(_ => (long)random.Next((int)(FileSize / 4096)) * 4096).ToArray();
                var order = round % 2 == 0 ? Enumerable.Range(0, variants.Count) : Enumerable.Range(0, variants.Count).Reverse();
                foreach (var v in order)
                {
                    var written = WriteBytes();
                    var watch = Stopwatch.StartNew();
                    foreach (var offset in offsets)
                    {
                        variants[v].Write(offset);
                    }

                    perOp[v].Add(watch.Elapsed.TotalMicroseconds / ops);
                    bytesPerOp[v].Add((WriteBytes() - written) / (double)ops);
                }
            }

            Console.WriteLine("| variant | µs per 4 KiB memcpy+persist (median of rounds) | spread | ratio to native | KiB written back per persist (/proc/self/io write_bytes) |");
            Console.WriteLine("|---|---:|---:|---:|---:|");
            var nativeMedian = Stats.Median(perOp[0]);
            for (var v = 0; v < variants.Count; v++)
            {
                var ratios = perOp[v].Zip(perOp[0], (a, b) => a / b);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {variants[v].Name} | {Stats.Median(perOp[v]):0} | {perOp[v].Min():0}-{perOp[v].Max():0} | {Stats.Median(ratios):0.00} | {Stats.Median(bytesPerOp[v]) / 1024:0.0} |"));
            }

            Console.WriteLine();
            Console.WriteLine("First touch, sequential 1 MiB memcpy + persist over the fresh file (one pass, not interleaved):");
            foreach (var (name, mbps) in prefill)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {mbps:0} MB/s |"));
            }

            // Sequential overwrite in 1 MiB memcpy + persist steps of the whole file, interleaved rounds.
            var sequential = variants.Select(_ => new List<double>()).ToArray();
            for (var round = 0; round < Math.Max(3, rounds / 2); round++)
            {
                for (var v = 0; v < variants.Count; v++)
                {
                    var index = (v + round) % variants.Count;
                    var watch = Stopwatch.StartNew();
                    for (long o = 0; o < FileSize; o += fill.Length)
                    {
                        variants[index].WriteLarge(o, fillHandle.AddrOfPinnedObject(), fill);
                    }

                    sequential[index].Add(FileSize / watch.Elapsed.TotalSeconds / 1e6);
                }
            }

            Console.WriteLine();
            Console.WriteLine("Sequential overwrite, 1 MiB memcpy + persist steps (median MB/s of interleaved rounds):");
            for (var v = 0; v < variants.Count; v++)
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {variants[v].Name} | {Stats.Median(sequential[v]):0} MB/s | {sequential[v].Min():0}-{sequential[v].Max():0} |"));
            }

            Console.WriteLine($"load average at the end {LoadAverage()}");
            _ = nativeMedian;
            foreach (var variant in variants)
            {
                variant.Dispose();
            }
        }
        finally
        {
            handle.Free();
            fillHandle.Free();
            Directory.Delete(root, recursive: true);
        }

        return 0;
    }

    private static Microsoft.Win32.SafeHandles.SafeFileHandle NewFile(string root, string name, long size)
    {
        var handle = File.OpenHandle(Path.Combine(root, name), FileMode.CreateNew, FileAccess.ReadWrite);
        Pmem2Files.Allocate(handle, (ulong)size);
        return handle;
    }

    /// <summary>write_bytes of /proc/self/io: bytes this process caused to be sent to the block layer (msync writeback runs in the caller).</summary>
    private static long WriteBytes()
    {
        foreach (var line in File.ReadLines("/proc/self/io"))
        {
            if (line.StartsWith("write_bytes:", StringComparison.Ordinal))
            {
                return long.Parse(line["write_bytes:".Length..].Trim(), CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    private static string LoadAverage() => File.ReadAllText("/proc/loadavg").Split(' ')[0];
}
