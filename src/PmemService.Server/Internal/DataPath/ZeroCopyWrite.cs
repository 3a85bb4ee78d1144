using System.Buffers;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Pmem2;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal.DataPath;

/// <summary>
/// A WriteRegion request as the zero-copy deserializer leaves it: the <c>data</c> bytes are already
/// in the mapping (copied segment by segment from the HTTP/2 request buffers, never into a
/// ByteString), or <see cref="Fault"/> says why nothing was copied. The handler then persists
/// (or, with <see cref="DeferPersist"/>, does not) and answers.
/// </summary>
internal sealed class ZeroCopyWrite
{
    public string Name { get; set; } = string.Empty;

    public ulong Offset { get; set; }

    /// <summary>Length of the <c>data</c> field.</summary>
    public ulong Length { get; set; }

    public bool DeferPersist { get; set; }

    /// <summary>The mapping the bytes were copied into (the handler persists only that one).</summary>
    public RegionMapping? Mapping { get; set; }

    /// <summary>Why the request was refused (malformed, validation, transport); nothing was copied then.</summary>
    public Exception? Fault { get; set; }

    /// <summary>
    /// A TCP caller's data, held in a pooled buffer until the call is admitted: TCP callers are
    /// authenticated by <see cref="PeerAuthorizationInterceptor"/> after deserialization, so nothing of
    /// theirs may reach the mapping before that. The handler copies it (<see cref="WriteRegionDeserializer.CopyIntoRegion"/>).
    /// </summary>
    public byte[]? Held { get; set; }

    /// <summary>The identity whose write access <see cref="WriteRegionDeserializer.CopyIntoRegion"/> checks before copying.</summary>
    public RegionCaller? Caller { get; set; }
}

/// <summary>
/// The WriteRegion request deserializer. Runs inside grpc-dotnet's read of the request, while
/// <see cref="DeserializationContext.PayloadAsReadOnlySequence"/> is valid:
/// <list type="number">
/// <item>scans the message's tags (any field order; the data field may come first) without copying;</item>
/// <item>validates transport, name, mapping and range exactly as the handler did before (lease taken
/// for the copy only);</item>
/// <item>copies the data field from each payload segment straight into the mapping: non-temporal
/// stores without drain (persisted by the handler through <see cref="GroupCommit"/>), or a plain
/// copy without flush for <c>defer_persist</c> (made durable by a later PersistRegion, as before).</item>
/// </list>
/// Errors never escape as exceptions: they are recorded in <see cref="ZeroCopyWrite.Fault"/> and
/// thrown by the handler, so the error interceptor maps and logs them like any other.
/// </summary>
internal sealed class WriteRegionDeserializer
{
    private readonly RegionManager _regions;
    private readonly RegionBadBlocks _badBlocks;
    private readonly UnixPeerAdmission _admission;
    private readonly IHttpContextAccessor _httpContext;
    private readonly PmemServiceOptions _options;

    /// <param name="regions">The region manager.</param>
    /// <param name="badBlocks">Known bad ranges under a write are cleared before its copy, where the platform allows.</param>
    /// <param name="admission">The Unix socket caller's admission (SO_PEERCRED allow-list), checked before any byte is copied.</param>
    /// <param name="httpContext">The call's connection: a Unix socket caller is admitted here; a TCP caller's bytes are held until the interceptor admitted it.</param>
    /// <param name="options">Service options (who is a region superuser).</param>
    public WriteRegionDeserializer(RegionManager regions, RegionBadBlocks badBlocks, UnixPeerAdmission admission, IHttpContextAccessor httpContext, PmemServiceOptions options)
    {
        _options = options;
        _regions = regions;
        _badBlocks = badBlocks;
        _admission = admission;
        _httpContext = httpContext;
    }

    public ZeroCopyWrite Deserialize(DeserializationContext context)
    {
        var payload = context.PayloadAsReadOnlySequence();
        var call = new ZeroCopyWrite();
        if (!ProtoScanner.TryScanWriteRegion(payload, out var fields, out var error))
        {
            call.Fault = Malformed.Exception("WriteRegionRequest", error);
            return call;
        }

        call.Name = fields.Name;
        call.Offset = fields.Offset;
        call.Length = (ulong)fields.DataLength;
        if (FlushTypes.Resolve(fields.FlushType, fields.DeferPersist, out var visibility) is { } invalid)
        {
            call.Fault = invalid;
            return call;
        }

        call.DeferPersist = visibility;
        if (fields.NameTooLong)
        {
            call.Fault = new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidRegionName,
                $"Region name must be 1 to {RegionName.MaxLength} characters of [A-Za-z0-9._-] and not start with '.'.", "name");
            return call;
        }

        var http = _httpContext.HttpContext;
        if (http is null || http.Connection.LocalIpAddress is not null)
        {
            // TCP: authentication (or the refusal UNIX_SOCKET_REQUIRED) happens in the interceptor, after
            // this deserializer. Hold the bytes in a pooled buffer; the handler copies them once admitted.
            var held = ArrayPool<byte>.Shared.Rent(checked((int)fields.DataLength)); // at most the receive limit
            payload.Slice(fields.DataStart, fields.DataLength).CopyTo(held);
            call.Held = held;
            return call;
        }

        try
        {
            // Unix socket: the SO_PEERCRED allow-list before the first byte reaches the mapping.
            _admission.Admit("/pmem.v1.PmemService/WriteRegion", http);
            call.Caller = RegionCaller.From(http, _options); // write access is checked on the mapped inode before the copy
            CopyIntoRegion(_regions, _badBlocks, call, payload.Slice(fields.DataStart, fields.DataLength));
        }
        catch (Exception e)
        {
            call.Fault = e;
        }

        return call;
    }

    /// <summary>
    /// Validates the write against the mapped region (range, sticky persist failure), clears known bad
    /// ranges under it and copies <paramref name="data"/> into the mapping: a plain copy without flush
    /// for defer_persist, else non-temporal stores fenced on this thread (the persist follows in the handler).
    /// </summary>
    internal static void CopyIntoRegion(RegionManager regions, RegionBadBlocks badBlocks, ZeroCopyWrite call, ReadOnlySequence<byte> data)
    {
        using var lease = call.Caller is { } caller
            ? regions.Acquire(call.Name, caller, AccessRights.Write, "WriteRegion")
            : throw new InvalidOperationException("WriteRegion without a caller identity.");
        RegionRange.Check(lease.Name, lease.Size, call.Offset, call.Length, "offset", "data");
        if (lease.Map.PersistFailure is { } failure)
        {
            // Sticky persist error: nothing is copied into a mapping that can no longer be made durable.
            throw ErrorMapping.Map(failure).With("region", lease.Name);
        }

        if (call.Length > 0)
        {
            badBlocks.ClearBeforeWrite(lease, call.Offset, call.Length);
            var map = lease.Map;
            var offset = call.Offset;
            foreach (var segment in data)
            {
                if (call.DeferPersist)
                {
                    map.Memcpy(offset, segment.Span, Pmem2MemFlags.NoFlush);
                }
                else
                {
                    map.CopyNonTemporalDeferred(offset, segment.Span);
                }

                offset += (ulong)segment.Length;
            }

            if (!call.DeferPersist)
            {
                // Fence the NT stores on the thread that made them (sfence; nothing at PAGE, where the
                // locked release of the map handle already drained the write-combining buffers): the
                // handler's drain/msync may run on another thread.
                map.Drain();
            }
        }

        call.Mapping = lease.Mapping;
    }
}

/// <summary>Flush types (issue 14): VISIBILITY is what defer_persist always was; PERSISTENT is the default.</summary>
internal static class FlushTypes
{
    /// <summary>Resolves flush_type and the deprecated defer_persist; returns INVALID_ARGUMENT INVALID_FLUSH_TYPE for a conflict or unknown value.</summary>
    public static PmemServiceException? Resolve(ulong flushType, bool deferPersist, out bool visibility)
    {
        visibility = deferPersist || flushType == (ulong)FlushType.Visibility;
        if (flushType > (ulong)FlushType.Visibility)
        {
            return new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidFlushType,
                $"flush_type {flushType} is not a FlushType (0 unspecified, 1 persistent, 2 visibility).", "flush_type");
        }

        if (deferPersist && flushType == (ulong)FlushType.Persistent)
        {
            return new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.InvalidFlushType,
                "defer_persist (deprecated: it means FLUSH_TYPE_VISIBILITY) conflicts with flush_type FLUSH_TYPE_PERSISTENT.", "flush_type");
        }

        return null;
    }
}

/// <summary>INVALID_ARGUMENT MALFORMED_MESSAGE for request bodies that are not valid protobuf.</summary>
internal static class Malformed
{
    public static PmemServiceException Exception(string messageType, string? detail, Exception? inner = null) =>
        new PmemServiceException(StatusCode.InvalidArgument, PmemErrorReasons.MalformedMessage,
            $"The request is not a valid {messageType} message: {detail ?? "invalid protobuf"}.", inner: inner)
            .With("message_type", messageType);

    /// <summary>For deserializers that cannot hand a fault to their handler: the status itself.</summary>
    public static RpcException Rpc(string messageType, string? detail, Exception? inner = null) =>
        ErrorMappingInterceptor.Build(Exception(messageType, detail, inner));
}
