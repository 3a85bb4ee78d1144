using System.Diagnostics;
using System.Globalization;
using Grpc.Core;
using Pmem2;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal;

/// <summary>Sharing primitives (issue 14): persistent atomics, GetUpload and WatchRegion.</summary>
internal sealed partial class PmemGrpcService
{
    /// <summary>Response header of WatchRegion: the server's watch epoch.</summary>
    internal const string WatchEpochHeader = "pmem-watch-epoch";

    /// <summary>Response header of WatchRegion: the region's latest sequence when the watch started.</summary>
    internal const string WatchSequenceHeader = "pmem-watch-sequence";

    public override Task<AtomicWriteResponse> AtomicWrite(AtomicWriteRequest request, ServerCallContext context)
    {
        Atomic(request.Name, request.Offset, Caller(context), "AtomicWrite", WatchEventKind.AtomicWrite, request.Value, 0,
            static (map, offset, value, _) => { map.AtomicStore64(offset, value); return 0; });
        return Task.FromResult(new AtomicWriteResponse { Persisted = true });
    }

    public override Task<CompareAndSwapResponse> CompareAndSwap(CompareAndSwapRequest request, ServerCallContext context)
    {
        var found = Atomic(request.Name, request.Offset, Caller(context), "CompareAndSwap", WatchEventKind.CompareAndSwap, request.Desired, request.Expected,
            static (map, offset, desired, expected) => map.CompareExchange64(offset, desired, expected));
        return Task.FromResult(new CompareAndSwapResponse { Swapped = found == request.Expected, Previous = found });
    }

    public override Task<FetchAddResponse> FetchAdd(FetchAddRequest request, ServerCallContext context)
    {
        var previous = Atomic(request.Name, request.Offset, Caller(context), "FetchAdd", WatchEventKind.FetchAdd, request.Delta, 0,
            static (map, offset, delta, _) => map.FetchAdd64(offset, delta));
        return Task.FromResult(new FetchAddResponse { Previous = previous, Value = unchecked(previous + request.Delta) });
    }

    public override Task<GetUploadResponse> GetUpload(GetUploadRequest request, ServerCallContext context) =>
        Task.FromResult(new GetUploadResponse { Upload = _regions.GetUpload(request.Name, request.UploadId, Caller(context)) });

    /// <summary>
    /// WatchRegion: the subscription is made (and the history to replay taken) before the response headers
    /// are sent, so a client that has seen the headers (<see cref="WatchEpochHeader"/>, <see cref="WatchSequenceHeader"/>)
    /// misses no later event. Ends with the channel's error (DATA_LOSS WATCH_HISTORY_OVERFLOW for a slow reader,
    /// NOT_FOUND REGION_DELETED), or UNAVAILABLE SHUTTING_DOWN.
    /// </summary>
    public override async Task WatchRegion(WatchRegionRequest request, IServerStreamWriter<WatchRegionResponse> responseStream, ServerCallContext context)
    {
        using var subscription = _regions.Watch(request.Name, request.AfterSequence, request.Epoch, request.FromHistory, Caller(context));
        var epoch = _regions.Watches.Epoch;
        PmemLog.WatchStarted(_logger, request.Name, request.AfterSequence, subscription.LatestAtStart);
        var stopping = _lifetime.ApplicationStopping;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, stopping);
        try
        {
            await context.WriteResponseHeadersAsync(new Metadata
            {
                { WatchEpochHeader, epoch },
                { WatchSequenceHeader, subscription.LatestAtStart.ToString(CultureInfo.InvariantCulture) },
            }).ConfigureAwait(false);
            await foreach (var e in subscription.Reader.ReadAllAsync(cts.Token).ConfigureAwait(false))
            {
                await responseStream.WriteAsync(e.ToMessage(epoch), cts.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw PmemServiceException.ShuttingDown();
        }
        catch (PmemServiceException e) when (e.Reason == PmemErrorReasons.WatchHistoryOverflow)
        {
            PmemLog.WatchOverflowed(_logger, request.Name, e.Message);
            throw;
        }
    }

    /// <summary>
    /// One persistent 8-byte atomic on the shared mapping: alignment, range, sticky persist failure and file
    /// checks (in Acquire) first, then the CPU atomic and the persist of its 8 bytes (Pmem2Map.Atomic), then the watch event.
    /// </summary>
    private long Atomic(string name, ulong offset, RegionCaller caller, string operation, WatchEventKind kind, long a, long b, Func<Pmem2Map, ulong, long, long, long> op)
    {
        using var lease = _regions.Acquire(name, caller, AccessRights.Write, operation);
        if ((offset & 7) != 0)
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.AtomicMisaligned,
                $"{operation} offset {offset} is not 8-byte aligned.", "offset").With("region", lease.Name).With("offset", offset);
        }

        RegionRange.Check(lease.Name, lease.Size, offset, sizeof(long));
        ThrowIfPersistFailed(lease, operation);
        if (lease.Region.Deleted)
        {
            // (Acquire already checked the file itself: fstat of the mapped descriptor and of the name, as for WriteRegion.)
            throw PmemServiceException.Deleted(lease.Name);
        }
        var start = Stopwatch.GetTimestamp();
        long result;
        try
        {
            result = op(lease.Map, offset, a, b);
        }
        catch (Pmem2Exception e) when (e.IsPersistFailure)
        {
            throw PersistFailed(lease, operation, e);
        }

        _metrics.Persisted(start, "atomic", lease.Mapping.EffectiveName);
        _metrics.Written(sizeof(long), operation);
        _regions.Watches.Publish(lease.Name, kind, offset, sizeof(long), FlushType.Persistent);
        return result;
    }
}
