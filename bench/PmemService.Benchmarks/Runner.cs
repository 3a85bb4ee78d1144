using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using PmemService.Contracts.V1;
using Client = PmemService.Contracts.V1.PmemService.PmemServiceClient;

namespace PmemService.Benchmarks;

internal enum RowKind
{
    StreamWrite,
    Unary,
    StreamRead,
    /// <summary>CompareAndSwap round trips (issue 14): each worker increments its own 8-byte slot with CAS.</summary>
    CompareAndSwap,
}

/// <summary>One benchmark row: what to call, over which transport, on the service mapped at which granularity.</summary>
internal sealed record Row(string Label, RowKind Kind, string Transport, string Granularity, int Size, int Concurrency)
{
    /// <summary>Unary and CompareAndSwap rows are compared in calls/s, stream rows in MB/s.</summary>
    public bool IsUnary => Kind is RowKind.Unary or RowKind.CompareAndSwap;

    public string Unit => IsUnary ? "calls/s" : "MB/s";

    /// <summary>The figure this row compares targets on.</summary>
    public double Value(Sample sample) => IsUnary ? sample.CallsPerSecond : sample.MBps;

    /// <summary>Per-rep ratios of <paramref name="targets"/> to <paramref name="references"/> (interleaved reps, pairwise).</summary>
    public List<double> Ratios(IEnumerable<Sample> targets, IEnumerable<Sample> references) =>
        targets.Zip(references, (a, b) => Value(a) / Value(b)).ToList();
}

/// <summary>One measurement of one target.</summary>
internal sealed record Sample(double Seconds, long Bytes, long Calls, double CpuSeconds, long Allocated, double[] LatenciesUs)
{
    public double MBps => Bytes / Seconds / 1e6;

    public double CallsPerSecond => Calls / Seconds;

    public double CpuSecondsPerGB => Bytes == 0 ? 0 : CpuSeconds / (Bytes / 1e9);

    /// <summary>The <paramref name="q"/> latency quantile in µs (0 when nothing was measured).</summary>
    public double P(double q) => LatenciesUs.Length == 0 ? 0 : Stats.Percentile(LatenciesUs, q);
}

/// <summary>A target: a child server and its channels.</summary>
internal sealed class Target : IDisposable
{
    public Target(ChildServer server)
    {
        Server = server;
        Uds = new Client(CreateUdsChannel(server.SocketPath));
        Tcp = new Client(GrpcChannel.ForAddress($"http://127.0.0.1:{server.TcpPort}", Options(new SocketsHttpHandler())));
    }

    public ChildServer Server { get; }

    public Client Uds { get; }

    public Client Tcp { get; }

    public Client For(string transport) => transport == "UDS" ? Uds : Tcp;

    /// <summary>Creates (or maps) the region every row uses: <see cref="Load.Region"/>, <see cref="Load.RegionSize"/>.</summary>
    public async Task<Contracts.V1.RegionInfo> MapBenchRegionAsync() =>
        (await Uds.MapRegionAsync(new MapRegionRequest { Name = Load.Region, Size = Load.RegionSize, CreateIfMissing = true })).Region;

    private static GrpcChannelOptions Options(SocketsHttpHandler handler)
    {
        handler.EnableMultipleHttp2Connections = true;
        handler.InitialHttp2StreamWindowSize = 4 << 20;
        return new GrpcChannelOptions { HttpHandler = handler, MaxReceiveMessageSize = 8 << 20, MaxSendMessageSize = null };
    }

    private static GrpcChannel CreateUdsChannel(string socketPath)
    {
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (_, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        return GrpcChannel.ForAddress("http://localhost", Options(handler));
    }

    public void Dispose()
    {
    }
}

/// <summary>The load generators. Every loop is bounded by a byte count or a deadline.</summary>
internal static class Load
{
    public const string Region = "bench";
    public const ulong RegionSize = 1UL << 30;
    // Inside the range the stream rows wrote first, so unary rows measure overwrites, not first touches of unwritten extents.
    internal const int UnarySpan = 32 << 20;

    public static async Task<Sample> RunAsync(Target target, Row row, long streamBytes, TimeSpan unaryDuration, bool measureAllocations)
    {
        var client = target.For(row.Transport);
        var allocatedBefore = measureAllocations ? await target.Server.AllocatedBytesAsync() : 0;
        var cpuBefore = target.Server.CpuSeconds();
        var watch = Stopwatch.StartNew();
        var (bytes, calls, latencies) = row.Kind switch
        {
            RowKind.StreamWrite => await StreamWriteAsync(client, row.Size, streamBytes),
            RowKind.StreamRead => await StreamReadAsync(client, row.Size, streamBytes),
            RowKind.CompareAndSwap => await CasLoad.RunAsync(client, row.Concurrency, unaryDuration),
            _ => await UnaryAsync(client, row.Size, row.Concurrency, unaryDuration),
        };
        var seconds = watch.Elapsed.TotalSeconds;
        var cpu = target.Server.CpuSeconds() - cpuBefore;
        var allocated = measureAllocations ? await target.Server.AllocatedBytesAsync() - allocatedBefore : 0;
        return new Sample(seconds, bytes, calls, cpu, allocated, latencies);
    }

    private static async Task<(long, long, double[])> StreamWriteAsync(Client client, int chunk, long total)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(chunk);
        Random.Shared.NextBytes(buffer);
        var latencies = new List<double>();
        long sent = 0;
        try
        {
            using var call = client.StreamWriteRegion(deadline: DateTime.UtcNow.AddMinutes(10));
            await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Header = new StreamWriteHeader { Name = Region, Offset = 0 } });
            var data = UnsafeByteOperations.UnsafeWrap(buffer.AsMemory(0, chunk));
            while (sent < total)
            {
                var start = Stopwatch.GetTimestamp();
                await call.RequestStream.WriteAsync(new StreamWriteRegionRequest { Data = data });
                latencies.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
                sent += chunk;
            }

            await call.RequestStream.CompleteAsync();
            var response = await call;
            if ((long)response.BytesPersisted != sent)
            {
                throw new InvalidOperationException($"persisted {response.BytesPersisted} of {sent}");
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return (sent, 1, latencies.ToArray());
    }

    private static async Task<(long, long, double[])> StreamReadAsync(Client client, int chunk, long total)
    {
        var latencies = new List<double>();
        long received = 0;
        using var call = client.StreamReadRegion(new StreamReadRegionRequest { Name = Region, Offset = 0, Length = (ulong)total, ChunkSize = (uint)chunk },
            deadline: DateTime.UtcNow.AddMinutes(10));
        var last = Stopwatch.GetTimestamp();
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
        {
            received += call.ResponseStream.Current.Data.Length;
            var now = Stopwatch.GetTimestamp();
            latencies.Add(Stopwatch.GetElapsedTime(last, now).TotalMicroseconds);
            last = now;
        }

        if (received != total)
        {
            throw new InvalidOperationException($"received {received} of {total}");
        }

        return (received, 1, latencies.ToArray());
    }

    private static async Task<(long, long, double[])> UnaryAsync(Client client, int size, int concurrency, TimeSpan duration)
    {
        var data = ByteString.CopyFrom(new byte[size]);
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var perWorker = new List<double>[concurrency];
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            var latencies = perWorker[w] = new List<double>(4096);
            var random = new Random(w);
            var slots = UnarySpan / size;
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var offset = (ulong)random.Next(slots) * (ulong)size;
                var start = Stopwatch.GetTimestamp();
                await client.WriteRegionAsync(new WriteRegionRequest { Name = Region, Offset = offset, Data = data });
                latencies.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
            }
        })).ToArray();
        await Task.WhenAll(workers);
        var all = perWorker.SelectMany(l => l).ToArray();
        return ((long)all.Length * size, all.Length, all);
    }
}

/// <summary>CompareAndSwap load (issue 14), next to the unary write rows it is compared with.</summary>
internal static class CasLoad
{
    public static async Task<(long, long, double[])> RunAsync(Client client, int concurrency, TimeSpan duration)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var perWorker = new List<double>[concurrency];
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            var latencies = perWorker[w] = new List<double>(4096);
            var offset = (ulong)(w * 64); // one cache line per worker: every CAS swaps
            var expected = (await client.FetchAddAsync(new FetchAddRequest { Name = Load.Region, Offset = offset, Delta = 0 })).Previous;
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var start = Stopwatch.GetTimestamp();
                var r = await client.CompareAndSwapAsync(new CompareAndSwapRequest { Name = Load.Region, Offset = offset, Expected = expected, Desired = expected + 1 });
                latencies.Add(Stopwatch.GetElapsedTime(start).TotalMicroseconds);
                expected = r.Swapped ? expected + 1 : r.Previous;
            }
        })).ToArray();
        await Task.WhenAll(workers);
        var all = perWorker.SelectMany(l => l).ToArray();
        return ((long)all.Length * sizeof(long), all.Length, all);
    }
}

/// <summary>Median and spread of interleaved reps.</summary>
internal static class Stats
{
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0)
        {
            return double.NaN;
        }

        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    public static string Spread(IEnumerable<double> values, string format)
    {
        var list = values.ToArray();
        return list.Length == 0 ? "-" : $"{list.Min().ToString(format, CultureInfo.InvariantCulture)}-{list.Max().ToString(format, CultureInfo.InvariantCulture)}";
    }

    /// <summary>The <paramref name="q"/> quantile of raw latencies (NaN when there are none).</summary>
    public static double Percentile(double[] values, double q)
    {
        if (values.Length == 0)
        {
            return double.NaN;
        }

        var sorted = values.Order().ToArray();
        return sorted[Math.Min(sorted.Length - 1, (int)(q * sorted.Length))];
    }

    public static double LoadAverage() =>
        double.Parse(File.ReadAllText("/proc/loadavg").Split(' ')[0], CultureInfo.InvariantCulture);
}

/// <summary>Positional arguments of the extra modes (<c>overhead 7 1000</c>): the one at <paramref name="index"/>, or the default.</summary>
internal static class ModeArgs
{
    public static int Int(string[] args, int index, int fallback) =>
        args.Length > index ? int.Parse(args[index], CultureInfo.InvariantCulture) : fallback;
}
