using System.Buffers;
using System.Diagnostics;
using System.Runtime.ExceptionServices;
using Grpc.Core;
using Pmem2;
using PmemService.Contracts.V1;
using PmemService.Server.Internal.DataPath;

namespace PmemService.Server.Internal;

/// <summary>The zero-copy WriteRegion handler (the deserializer already copied the data; see DataPath/ZeroCopyWrite.cs).</summary>
internal sealed partial class PmemGrpcService
{
    /// <summary>
    /// WriteRegion after <see cref="WriteRegionDeserializer"/>: the bytes are in the mapping (or the
    /// fault says why not). Without defer_persist they are persisted before the answer: a drain on
    /// CACHE_LINE, and on PAGE an msync through <see cref="GroupCommit"/> (a bounded number run at once; writers beyond it share one).
    /// </summary>
    public async Task<WriteRegionResponse> WriteRegion(ZeroCopyWrite request, ServerCallContext context)
    {
        if (request.Fault is { } fault)
        {
            ExceptionDispatchInfo.Throw(fault);
        }

        if (request.Held is { } held)
        {
            // A TCP caller, admitted by now (PeerAuthorizationInterceptor runs before this handler); its
            // region access is checked by CopyIntoRegion before the first byte is copied.
            try
            {
                request.Caller = Caller(context);
                WriteRegionDeserializer.CopyIntoRegion(_regions, _badBlocks, request, new ReadOnlySequence<byte>(held, 0, (int)request.Length));
            }
            finally
            {
                request.Held = null;
                ArrayPool<byte>.Shared.Return(held);
            }
        }

        if (request.Length > 0)
        {
            if (!request.DeferPersist)
            {
                // The deserializer's lease covered the copy only; persist through a new one on the same mapping.
                // Fast path: the same mapping, no second file check; otherwise the full Acquire, which throws the
                // precise reason (deleted, file changed, not mapped) or returns a different mapping.
                using var lease = (request.Mapping is { } mapping ? _regions.AcquireSameMapping(request.Name, mapping) : null)
                    ?? _regions.Acquire(request.Name);
                if (!ReferenceEquals(lease.Mapping, request.Mapping))
                {
                    // Unmapped (which persists the whole mapping) and mapped again in between: not ours to acknowledge.
                    throw new PmemServiceException(StatusCode.FailedPrecondition, PmemErrorReasons.RegionNotMapped,
                        $"Region '{request.Name}' was unmapped while the write was in flight; write it again.").With("region", request.Name);
                }

                var start = Stopwatch.GetTimestamp();
                try
                {
                    await GroupCommit.PersistAsync(lease.Map, request.Offset, request.Length, _options.PageSyncParallelism).ConfigureAwait(false);
                }
                catch (Pmem2Exception e) when (e.IsPersistFailure)
                {
                    throw PersistFailed(lease, "WriteRegion", e);
                }
                catch (PmemServiceException e) when (e.InnerException is Pmem2Exception { IsPersistFailure: true } inner)
                {
                    // GroupCommit's DATA_LOSS for a failed msync (this caller's or the round that covered it).
                    _ = PersistFailed(lease, "WriteRegion", inner);
                    throw;
                }
                _metrics.Persisted(start, "write", lease.Mapping.EffectiveName);
            }

            _metrics.Written((long)request.Length, "WriteRegion");
        }

        var flushType = request.DeferPersist ? FlushType.Visibility : FlushType.Persistent;
        if (request.Length > 0)
        {
            _regions.Watches.Publish(request.Name, WatchEventKind.Write, request.Offset, request.Length, flushType);
        }

        return new WriteRegionResponse { BytesWritten = request.Length, Persisted = !request.DeferPersist || request.Length == 0, FlushType = flushType };
    }
}
