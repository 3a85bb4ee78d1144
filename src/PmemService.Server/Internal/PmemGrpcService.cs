using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Pmem2;
using PmemService.Contracts.V1;
using PmemService.Server.Internal.DataPath;

namespace PmemService.Server.Internal;

/// <summary>
/// The pmem.v1.PmemService implementation. Handlers throw <see cref="PmemServiceException"/> (or
/// let Pmem2/IO exceptions through); <see cref="ErrorMappingInterceptor"/> turns them into statuses.
/// </summary>
// Bound by DataPath.PmemMethodProvider with zero-copy marshallers; the attribute turns the generated binder off.
[BindServiceMethod(typeof(PmemServiceBinding), nameof(PmemServiceBinding.BindService))]
internal sealed partial class PmemGrpcService : Contracts.V1.PmemService.PmemServiceBase
{
    /// <summary>Bytes a StreamReadRegionResponse adds to its data: tags, the offset varint, the length varint.</summary>
    internal const int StreamReadMessageOverhead = 32;

    private readonly RegionManager _regions;
    private readonly PmemMetrics _metrics;
    private readonly PmemServiceOptions _options;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<PmemGrpcService> _logger;
    private readonly RegionBadBlocks _badBlocks;

    public PmemGrpcService(RegionManager regions, PmemMetrics metrics, IOptions<PmemServiceOptions> options,
        IHostApplicationLifetime lifetime, ILogger<PmemGrpcService> logger, RegionBadBlocks badBlocks)
    {
        _badBlocks = badBlocks;
        _regions = regions;
        _metrics = metrics;
        _options = options.Value;
        _lifetime = lifetime;
        _logger = logger;
    }

    public override async Task<MapRegionResponse> MapRegion(MapRegionRequest request, ServerCallContext context)
    {
        var info = await _regions.MapAsync(request.Name, request.Size, request.RequiredGranularity, request.CreateIfMissing, context.CancellationToken, Caller(context))
            .ConfigureAwait(false);
        return new MapRegionResponse { Region = info };
    }

    public override async Task<UnmapRegionResponse> UnmapRegion(UnmapRegionRequest request, ServerCallContext context)
    {
        var remaining = await _regions.UnmapAsync(request.Name, context.CancellationToken, Caller(context)).ConfigureAwait(false);
        return new UnmapRegionResponse { RemainingReferences = remaining };
    }

    /// <summary>Direct access lane: a grant for the calling process (DirectAccess/DirectSideChannel).</summary>
    public override Task<OpenDirectResponse> OpenDirect(OpenDirectRequest request, ServerCallContext context)
    {
        var http = context.GetHttpContext();
        var lane = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<DirectAccess.DirectSideChannel>(http.RequestServices);
        return Task.FromResult(lane.Open(request, PeerCredentials.FromHttpContext(http), overTcp: http.Connection.LocalIpAddress is not null, Caller(context)));
    }

    /// <summary>The identity the call is authorized as on regions (after admission).</summary>
    private RegionCaller Caller(ServerCallContext context) => RegionCaller.From(context.GetHttpContext(), _options);

    public override Task<GetRegionResponse> GetRegion(GetRegionRequest request, ServerCallContext context) =>
        Task.FromResult(new GetRegionResponse { Region = WithContent(_badBlocks.Annotate(_regions.Get(request.Name, Caller(context)), Path.Combine(_regions.PoolPath, request.Name))) });

    public override Task<ListRegionsResponse> ListRegions(ListRegionsRequest request, ServerCallContext context)
    {
        var (regions, next) = _regions.List(request.PageSize, request.PageToken, Caller(context));
        var response = new ListRegionsResponse { NextPageToken = next };
        response.Regions.AddRange(regions);
        return Task.FromResult(response);
    }

    public override async Task<DeleteRegionResponse> DeleteRegion(DeleteRegionRequest request, ServerCallContext context)
    {
        await _regions.DeleteAsync(request.Name, request.Force, context.CancellationToken, Caller(context)).ConfigureAwait(false);
        return new DeleteRegionResponse();
    }

    public override Task<ReadRegionResponse> ReadRegion(ReadRegionRequest request, ServerCallContext context)
    {
        if (request.Length > (ulong)_options.MaxUnaryReadLength)
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.ReadTooLarge,
                $"length {request.Length} exceeds the unary read limit of {_options.MaxUnaryReadLength} bytes (PmemService:MaxUnaryReadLength); use StreamReadRegion.",
                "length").With("limit", _options.MaxUnaryReadLength);
        }

        using var lease = _regions.Acquire(request.Name, Caller(context), AccessRights.Read, "ReadRegion");
        RegionRange.Check(lease.Name, lease.Size, request.Offset, request.Length);
        if (request.Length == 0)
        {
            return Task.FromResult(new ReadRegionResponse { Data = ByteString.Empty });
        }

        // Unary reads pread the mapped file once into a fresh array that the ByteString then owns
        // (UnsafeWrap over an array nobody else references): never a view of the mapping itself.
        _badBlocks.ThrowIfTouched(lease.Name, _badBlocks.PathOf(lease.Name), request.Offset, request.Length); // DATA_LOSS BAD_BLOCK
        var buffer = GC.AllocateUninitializedArray<byte>((int)request.Length);
        lease.Read(request.Offset, buffer); // pread: a truncated file is REGION_FILE_CHANGED, not SIGBUS
        _metrics.Read(buffer.Length, "ReadRegion");
        return Task.FromResult(new ReadRegionResponse { Data = UnsafeByteOperations.UnsafeWrap(buffer) });
    }

    /// <summary>
    /// StreamReadRegion, bound with <see cref="StreamReadChunkSerializer"/>: every check that can fail
    /// runs here before each chunk (shutdown, cancellation, deleted/file changed, bad blocks), and the
    /// chunk's bytes are pread straight into the response pipe while WriteAsync serializes the message
    /// (it has done so before it completes, so the lease covers the read). A read that still fails
    /// there (truncated between the check and the pread, EIO) comes back in <see cref="ZeroCopyReadChunk.Fault"/>.
    /// </summary>
    public async Task StreamReadRegion(StreamReadRegionRequest request, IServerStreamWriter<ZeroCopyReadChunk> responseStream, ServerCallContext context)
    {
        // Every chunk is exactly chunk_size bytes (the last one may be shorter), and a chunk plus its
        // message framing never exceeds the send limit.
        var maxChunk = (uint)Math.Min(_options.MaxReadChunkSize, Math.Max(1, _options.MaxSendMessageSize - StreamReadMessageOverhead));
        var chunkSize = request.ChunkSize == 0 ? Math.Min((uint)_options.DefaultReadChunkSize, maxChunk) : request.ChunkSize;
        if (chunkSize > maxChunk)
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.ChunkSizeTooLarge,
                $"chunk_size {chunkSize} exceeds {maxChunk} (PmemService:MaxReadChunkSize, and the send limit PmemService:MaxSendMessageSize minus {StreamReadMessageOverhead} bytes of framing).", "chunk_size")
                .With("limit", maxChunk);
        }

        using var lease = _regions.Acquire(request.Name, Caller(context), AccessRights.Read, "StreamReadRegion");
        if (request.Offset > lease.Size)
        {
            RegionRange.Check(lease.Name, lease.Size, request.Offset, request.Length);
        }

        var length = request.Length == 0 ? lease.Size - request.Offset : request.Length;
        RegionRange.Check(lease.Name, lease.Size, request.Offset, length);

        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, _lifetime.ApplicationStopping);
        var message = new ZeroCopyReadChunk(lease);
        var path = _badBlocks.PathOf(lease.Name); // once per call, not a string per chunk
        try
        {
            var offset = request.Offset;
            var end = request.Offset + length;
            while (offset < end)
            {
                if (_lifetime.ApplicationStopping.IsCancellationRequested)
                {
                    throw PmemServiceException.ShuttingDown().With("offset", offset);
                }

                context.CancellationToken.ThrowIfCancellationRequested();
                lease.ThrowIfDeleted();
                var n = (int)Math.Min(chunkSize, end - offset);
                _badBlocks.ThrowIfTouched(lease.Name, path, offset, (ulong)n); // DATA_LOSS BAD_BLOCK
                message.Offset = offset;
                message.Length = n;
                await responseStream.WriteAsync(message, cts.Token).ConfigureAwait(false);
                if (message.Fault is { } fault)
                {
                    // The client got this chunk with empty data; the status below says why.
                    ExceptionDispatchInfo.Throw(fault); // pread: a truncated file is REGION_FILE_CHANGED, not SIGBUS
                }

                _metrics.Read(n, "StreamReadRegion");
                offset += (ulong)n;
            }
        }
        catch (OperationCanceledException) when (_lifetime.ApplicationStopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            throw PmemServiceException.ShuttingDown();
        }
    }

    public override Task<PersistRegionResponse> PersistRegion(PersistRegionRequest request, ServerCallContext context)
    {
        using var lease = _regions.Acquire(request.Name, Caller(context), AccessRights.Write, "PersistRegion");
        ThrowIfPersistFailed(lease, "PersistRegion");
        if (request.Offset > lease.Size)
        {
            RegionRange.Check(lease.Name, lease.Size, request.Offset, request.Length);
        }

        var length = request.Length == 0 ? lease.Size - request.Offset : request.Length;
        RegionRange.Check(lease.Name, lease.Size, request.Offset, length);
        if (DataPath.FlushTypes.Resolve((ulong)request.FlushType, deferPersist: false, out var visibility) is { } invalid)
        {
            throw invalid;
        }

        if (visibility)
        {
            // Visibility only: every store made through the service's mapping is already visible to the
            // other mappings of the file (one page cache / DAX media); a store fence orders this call after them.
            Interlocked.MemoryBarrier();
            if (length > 0)
            {
                _regions.Watches.Publish(lease.Name, WatchEventKind.Persist, request.Offset, length, FlushType.Visibility);
            }

            return Task.FromResult(new PersistRegionResponse { BytesPersisted = length, FlushType = FlushType.Visibility });
        }

        if (length > 0)
        {
            using var activity = PmemActivity.Source.StartActivity("pmem.persist");
            var start = Stopwatch.GetTimestamp();
            try
            {
                lease.Map.Persist(request.Offset, length);
            }
            catch (Pmem2Exception e) when (e.IsPersistFailure)
            {
                throw PersistFailed(lease, "PersistRegion", e);
            }

            _metrics.Persisted(start, "persist", lease.Mapping.EffectiveName);
            _regions.Watches.Publish(lease.Name, WatchEventKind.Persist, request.Offset, length, FlushType.Persistent);
        }

        return Task.FromResult(new PersistRegionResponse { BytesPersisted = length, FlushType = FlushType.Persistent });
    }

    public async Task<StreamWriteRegionResponse> StreamWriteRegion(IAsyncStreamReader<StreamWriteMessage> requestStream, ServerCallContext context)
    {
        var stopping = _lifetime.ApplicationStopping;
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.CancellationToken, stopping);
        bool hasFirst;
        try
        {
            hasFirst = await requestStream.MoveNext(cts.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is OperationCanceledException or IOException)
        {
            // Shutdown, cancellation or a deadline before the header arrived: nothing was written, and the
            // client must see the same retryable status as a stream stopped later (not INTERNAL).
            throw StreamError(e, stopping, context);
        }

        if (hasFirst && requestStream.Current.Fault is { } malformed)
        {
            throw malformed;
        }

        if (!hasFirst || requestStream.Current.PayloadCase != StreamWriteRegionRequest.PayloadOneofCase.Header)
        {
            throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.MissingStreamHeader,
                "The first StreamWriteRegion message must carry the header.", "header");
        }

        var header = requestStream.Current.Header!;
        // Write access before the sink is attached: no chunk of a caller without it reaches the mapping.
        using var lease = _regions.Acquire(header.Name, Caller(context), AccessRights.Write, "StreamWriteRegion");
        var start = header.Offset;
        // Validate everything that can be validated before the first byte is copied.
        RegionRange.Check(lease.Name, lease.Size, start, header.TotalLength, "header.offset", "header.total_length");
        ThrowIfPersistFailed(lease, "StreamWriteRegion", streamStart: start);
        var limit = header.TotalLength == 0 ? lease.Size : start + header.TotalLength;
        var uploadId = header.UploadId.Length > 0 ? Sharing.RegionUploads.ValidateId(header.UploadId, "header.upload_id") : null;
        UploadInfo? upload = null;
        if (uploadId is not null)
        {
            // Known to the server before the first byte: GetUpload answers from here on (FAILED_PRECONDITION
            // now, before anything is copied, when the pool cannot keep records).
            try
            {
                upload = _regions.Uploads.Record(lease.Name, lease.Mapping.File, uploadId, start, start, lease.Map);
            }
            catch (Exception e) when (e is Pmem2Exception or IOException)
            {
                // The record could not be written (fsetxattr failed), or its fsync of the mapped descriptor was told
                // about a failed write-back of the mapping, which is then failed (sticky) like a failed msync.
                PmemLog.UploadRecordFailed(_logger, lease.Name, uploadId, start, e);
                var error = e is Pmem2Exception { IsPersistFailure: true } failed
                    ? PersistFailed(lease, "StreamWriteRegion", failed)
                    : ErrorMapping.Map(e).With("region", lease.Name);
                error.PersistedOffset = start;
                error.BytesPersisted = 0;
                throw error;
            }
        }

        // Zero-copy: from here on the request stream's deserializer copies each chunk's data field from
        // the request buffers straight into the mapping (NT stores, no drain, no msync yet at PAGE) and into
        // the CRC, after the bounds and deleted checks; one barrier at the end (DataPath/StreamWriteSink).
        var sink = new StreamWriteSink(lease, start, limit, header.TotalLength == 0 ? lease.Size : limit, _badBlocks);
        sink.Attach();
        var crc = sink.Crc;
        var copiedEnd = start;
        var persistedEnd = start;
        var publishedEnd = start;
        var checkpoint = uploadId is null ? 0UL : (ulong)_options.UploadCheckpointBytes;

        // After a persist that succeeded: the watch event and the upload record for [publishedEnd, persistedEnd).
        void Persisted(bool throwOnRecordFailure)
        {
            if (persistedEnd > publishedEnd)
            {
                _regions.Watches.Publish(lease.Name, WatchEventKind.StreamWrite, publishedEnd, persistedEnd - publishedEnd, FlushType.Persistent);
                publishedEnd = persistedEnd;
            }

            if (uploadId is null || (upload is not null && upload.PersistedOffset >= persistedEnd))
            {
                return;
            }

            try
            {
                upload = _regions.Uploads.Record(lease.Name, lease.Mapping.File, uploadId, start, persistedEnd, lease.Map);
                PmemLog.UploadRecorded(_logger, lease.Name, uploadId, persistedEnd);
            }
            catch (Exception e) when (!throwOnRecordFailure && e is PmemServiceException or Pmem2Exception or IOException)
            {
                PmemLog.UploadRecordFailed(_logger, lease.Name, uploadId, persistedEnd, e);
            }
        }

        using var activity = PmemActivity.Source.StartActivity("pmem.stream_write");
        try
        {
            while (await requestStream.MoveNext(cts.Token).ConfigureAwait(false))
            {
                var message = requestStream.Current;
                copiedEnd = sink.End;
                if (message.Fault is { } fault)
                {
                    throw fault;
                }

                if (message.PayloadCase != StreamWriteRegionRequest.PayloadOneofCase.Data)
                {
                    throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.UnexpectedStreamMessage,
                        "Only the first StreamWriteRegion message may carry a header; later ones carry data.", "header");
                }

                if (message.Length > 0)
                {
                    _metrics.Written(message.Length, "StreamWriteRegion");
                }

                if (checkpoint > 0 && copiedEnd - persistedEnd >= checkpoint)
                {
                    // Resumable upload checkpoint: persist what came so far, then record it.
                    persistedEnd = CompleteDeferred(lease, persistedEnd, copiedEnd);
                    Persisted(throwOnRecordFailure: true);
                }
            }

            if (header.TotalLength != 0 && copiedEnd != limit)
            {
                throw new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.StreamLengthMismatch,
                    $"The stream carried {copiedEnd - start} bytes, not header.total_length {header.TotalLength}.", "header.total_length");
            }

            persistedEnd = CompleteDeferred(lease, persistedEnd, copiedEnd);
            Persisted(throwOnRecordFailure: true);
            PmemLog.StreamWriteCompleted(_logger, lease.Name, persistedEnd - start, persistedEnd);
            activity?.SetTag("pmem.bytes", persistedEnd - start);
            return new StreamWriteRegionResponse
            {
                Upload = upload,
                BytesPersisted = persistedEnd - start,
                PersistedOffset = persistedEnd,
                Crc64 = crc.GetCurrentHashAsUInt64(),
                Crc64Hex = RegionContent.Hex(crc.GetCurrentHashAsUInt64()),
            };
        }
        catch (Exception e)
        {
            // A failed persist is sticky: never retried (the kernel reports a write-back error once and
            // marks the pages clean, so a second msync would "succeed"). persistedEnd stays the end of
            // the last persist that succeeded (the header offset if none) and the status is DATA_LOSS.
            PmemServiceException? persistError = null;
            if (e is Pmem2Exception { IsPersistFailure: true } failed)
            {
                persistError = PersistFailed(lease, "StreamWriteRegion", failed);
            }
            else if (copiedEnd > persistedEnd && lease.Map.PersistFailure is { } earlier)
            {
                // Another call's persist of this mapping failed meanwhile: these copies cannot be persisted.
                PmemLog.PersistRefusedAfterFailure(_logger, "StreamWriteRegion", lease.Name, earlier.Message);
                persistError = ErrorMapping.Map(earlier).With("region", lease.Name);
            }
            else if (copiedEnd > persistedEnd && !lease.Region.Deleted)
            {
                // Make what was copied persistent, so the offset reported is exactly what survives.
                try
                {
                    persistedEnd = CompleteDeferred(lease, persistedEnd, copiedEnd);
                }
                catch (Pmem2Exception completeFailed) when (completeFailed.IsPersistFailure)
                {
                    persistError = PersistFailed(lease, "StreamWriteRegion", completeFailed);
                }
                catch (Exception other) when (other is Pmem2Exception or IOException)
                {
                    PmemLog.PersistOnUnmapFailed(_logger, lease.Name, other);
                }
            }

            Persisted(throwOnRecordFailure: false);
            var error = persistError ?? StreamError(e, stopping, context);
            error.PersistedOffset = persistedEnd;
            error.BytesPersisted = persistedEnd - start;
            PmemLog.StreamWriteInterrupted(_logger, lease.Name, error.Reason, persistedEnd - start, persistedEnd);
            throw error;
        }
    }

    private ulong CompleteDeferred(RegionLease lease, ulong start, ulong end)
    {
        if (end > start)
        {
            var timestamp = Stopwatch.GetTimestamp();
            lease.Map.CompleteDeferred(start, end - start);
            _metrics.Persisted(timestamp, "stream", lease.Mapping.EffectiveName);
        }

        return end;
    }

    /// <summary>
    /// Refuses a write or persist on a mapping whose persist failed before (sticky, see
    /// <see cref="Pmem2Map.PersistFailure"/>): DATA_LOSS IO_ERROR, before any byte is copied.
    /// </summary>
    private void ThrowIfPersistFailed(RegionLease lease, string operation, ulong? streamStart = null)
    {
        if (lease.Map.PersistFailure is { } failure)
        {
            PmemLog.PersistRefusedAfterFailure(_logger, operation, lease.Name, failure.Message);
            var error = ErrorMapping.Map(failure).With("region", lease.Name);
            if (streamStart is { } offset)
            {
                error.PersistedOffset = offset;
                error.BytesPersisted = 0;
            }

            throw error;
        }
    }

    /// <summary>DATA_LOSS IO_ERROR for a failed persist; logs the first failure of the mapping as an error.</summary>
    private PmemServiceException PersistFailed(RegionLease lease, string operation, Pmem2Exception e)
    {
        if (ReferenceEquals(e, lease.Map.PersistFailure))
        {
            PmemLog.PersistFailed(_logger, lease.Name, operation, e);
        }
        else
        {
            PmemLog.PersistRefusedAfterFailure(_logger, operation, lease.Name, e.Message);
        }

        return ErrorMapping.Map(e).With("region", lease.Name);
    }

    /// <summary>Classifies why a stream ended early; keeps domain errors, wraps the rest.</summary>
    private static PmemServiceException StreamError(Exception e, CancellationToken stopping, ServerCallContext context)
    {
        if (e is PmemServiceException domain)
        {
            return domain;
        }

        if (e is Pmem2Exception)
        {
            return ErrorMapping.Map(e);
        }

        if (e is RpcException { StatusCode: StatusCode.ResourceExhausted } tooLarge)
        {
            // grpc-dotnet refused a chunk above MaxReceiveMessageSize before deserializing it.
            return new PmemServiceException(StatusCode.ResourceExhausted, PmemErrorReasons.MessageTooLarge, tooLarge.Status.Detail, "data", e);
        }

        if (stopping.IsCancellationRequested && !context.CancellationToken.IsCancellationRequested)
        {
            return new PmemServiceException(StatusCode.Unavailable, PmemErrorReasons.ShuttingDown,
                "The server is shutting down; the stream was stopped after its last persisted byte.", inner: e);
        }

        if (context.CancellationToken.IsCancellationRequested || e is OperationCanceledException || e is IOException)
        {
            var deadline = context.Deadline != DateTime.MaxValue && context.Deadline <= DateTime.UtcNow;
            return deadline
                ? new PmemServiceException(StatusCode.DeadlineExceeded, PmemErrorReasons.DeadlineExceeded, "The stream's deadline passed.", inner: e)
                : new PmemServiceException(StatusCode.Cancelled, PmemErrorReasons.Cancelled, "The stream was cancelled.", inner: e);
        }

        return ErrorMapping.Map(e);
    }
}
