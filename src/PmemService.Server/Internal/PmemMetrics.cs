using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace PmemService.Server.Internal;

/// <summary>
/// The service's own instruments (Meter "PmemService", created through IMeterFactory so tests can
/// observe them with MetricCollector). Tags stay low-cardinality: never region names.
/// </summary>
internal sealed class PmemMetrics
{
    public const string MeterName = "PmemService";

    // Persist latencies are microseconds on DAX (drain) and tens of microseconds to milliseconds for msync.
    private static readonly double[] PersistBuckets =
        [0.000_001, 0.000_002, 0.000_005, 0.000_01, 0.000_02, 0.000_05, 0.000_1, 0.000_2, 0.000_5,
         0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1];

    private readonly Counter<long> _writeBytes;
    private readonly Counter<long> _readBytes;
    private readonly Counter<long> _errors;
    private readonly Histogram<double> _persistDuration;

    // Live state read by the observable gauges: a listener that attaches late (dotnet-counters, a
    // restarted collector, a Prometheus scrape) sees what is mapped now, not the deltas since it attached.
    private long _mappedBytes;
    private long _activeRegions;

    public PmemMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(MeterName);
        _writeBytes = meter.CreateCounter<long>("pmem.write.bytes", "By", "Bytes written into regions.");
        _readBytes = meter.CreateCounter<long>("pmem.read.bytes", "By", "Bytes read from regions.");
        _errors = meter.CreateCounter<long>("pmem.errors", "{error}", "Failed calls, by gRPC status and pmem.v1 error reason.");
        _persistDuration = meter.CreateHistogram("pmem.persist.duration", "s", "Duration of persist barriers (drain or msync).",
            tags: null, advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = PersistBuckets });
        meter.CreateObservableGauge("pmem.mapped.bytes", () => Interlocked.Read(ref _mappedBytes), "By", "Bytes of regions currently mapped.");
        meter.CreateObservableGauge("pmem.regions.active", () => Interlocked.Read(ref _activeRegions), "{region}", "Regions currently mapped.");
    }

    /// <summary>Bytes of regions mapped now (the value the <c>pmem.mapped.bytes</c> gauge reports).</summary>
    public long MappedBytes => Interlocked.Read(ref _mappedBytes);

    /// <summary>Regions mapped now (the value the <c>pmem.regions.active</c> gauge reports).</summary>
    public long ActiveRegions => Interlocked.Read(ref _activeRegions);

    public void Written(long bytes, string rpc) => _writeBytes.Add(bytes, new KeyValuePair<string, object?>("rpc.method", rpc));

    public void Read(long bytes, string rpc) => _readBytes.Add(bytes, new KeyValuePair<string, object?>("rpc.method", rpc));

    /// <summary>One failed call (tags: gRPC status name, stable error reason, method name; never region names).</summary>
    public void Failed(string status, string reason, string rpc) => _errors.Add(1,
        new KeyValuePair<string, object?>("rpc.grpc.status", status),
        new KeyValuePair<string, object?>("pmem.error.reason", reason),
        new KeyValuePair<string, object?>("rpc.method", rpc));

    public void Persisted(long startTimestamp, string operation, string granularity) =>
        _persistDuration.Record(Stopwatch.GetElapsedTime(startTimestamp).TotalSeconds,
            new KeyValuePair<string, object?>("pmem.operation", operation),
            new KeyValuePair<string, object?>("pmem.granularity", granularity));

    public void Mapped(long bytes)
    {
        Interlocked.Add(ref _mappedBytes, bytes);
        Interlocked.Increment(ref _activeRegions);
    }

    public void Unmapped(long bytes)
    {
        Interlocked.Add(ref _mappedBytes, -bytes);
        Interlocked.Decrement(ref _activeRegions);
    }
}

/// <summary>The service's ActivitySource ("PmemService"): child spans for map, persist and shutdown.</summary>
internal static class PmemActivity
{
    public const string SourceName = "PmemService";

    public static readonly ActivitySource Source = new(SourceName);
}
