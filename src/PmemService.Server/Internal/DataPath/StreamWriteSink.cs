using System.Buffers;
using System.IO.Hashing;
using Grpc.Core;
using PmemService.Contracts.V1;

namespace PmemService.Server.Internal.DataPath;

/// <summary>
/// One StreamWriteRegion message as the zero-copy deserializer leaves it. For a data chunk of a
/// stream whose header was accepted, the bytes are already in the mapping (and in the CRC);
/// <see cref="Fault"/> says why a message was refused.
/// </summary>
internal sealed class StreamWriteMessage
{
    public StreamWriteRegionRequest.PayloadOneofCase PayloadCase { get; set; }

    /// <summary>The header, when <see cref="PayloadCase"/> is Header.</summary>
    public StreamWriteHeader? Header { get; set; }

    /// <summary>Length of the data chunk.</summary>
    public int Length { get; set; }

    /// <summary>Why the chunk was refused; the bytes copied so far are in <see cref="StreamWriteSink.End"/>.</summary>
    public Exception? Fault { get; set; }
}

/// <summary>
/// The state of one StreamWriteRegion call that the chunk deserializer writes into. The handler
/// validates the header, creates the sink and <see cref="Attach"/>es it to its async flow; every
/// later <c>MoveNext</c> of the request stream runs the deserializer in that flow, which copies the
/// chunk's data field segment by segment from the HTTP/2 request buffers straight into the mapping
/// (non-temporal, no drain, no msync yet) and appends the same segments to the CRC-64 — one pass, no
/// ByteString, no per-chunk allocation. Before the first byte of a chunk: bounds against the
/// header's limit and the deleted check, as the handler did before.
/// </summary>
internal sealed class StreamWriteSink
{
    private static readonly AsyncLocal<StreamWriteSink?> Current = new();

    private readonly StreamWriteMessage _chunk = new() { PayloadCase = StreamWriteRegionRequest.PayloadOneofCase.Data };
    private readonly ulong _checkSize;
    private readonly RegionBadBlocks? _badBlocks;

    /// <param name="lease">The stream's lease on the region's mapping.</param>
    /// <param name="start">The header's offset: where the first chunk goes.</param>
    /// <param name="limit">End of the range the stream may write.</param>
    /// <param name="checkSize">The size the bounds errors name (the region, or the header's range).</param>
    /// <param name="badBlocks">When given, known bad ranges under each chunk are cleared before its copy, where the platform allows.</param>
    public StreamWriteSink(RegionLease lease, ulong start, ulong limit, ulong checkSize, RegionBadBlocks? badBlocks = null)
    {
        Lease = lease;
        End = start;
        Limit = limit;
        _checkSize = checkSize;
        _badBlocks = badBlocks;
    }

    public RegionLease Lease { get; }

    /// <summary>End of the bytes copied so far (persisted only by CompleteDeferred).</summary>
    public ulong End { get; private set; }

    public ulong Limit { get; }

    public Crc64 Crc { get; } = new();

    /// <summary>Routes the data chunks this async flow deserializes from now on into this sink.</summary>
    public void Attach() => Current.Value = this;

    /// <summary>The StreamWriteRegionRequest deserializer.</summary>
    public static StreamWriteMessage Deserialize(DeserializationContext context)
    {
        var payload = context.PayloadAsReadOnlySequence();
        if (!ProtoScanner.TryScanStreamWrite(payload, out var kind, out var dataStart, out var dataLength, out var error))
        {
            return new StreamWriteMessage { Fault = Malformed.Exception("StreamWriteRegionRequest", error) };
        }

        var sink = Current.Value;
        if (kind == ProtoScanner.StreamPayload.Data && sink is not null)
        {
            return sink.Copy(payload.Slice(dataStart, dataLength));
        }

        if (kind == ProtoScanner.StreamPayload.Data)
        {
            // Data before the header was accepted: refused by the handler (MISSING_STREAM_HEADER), never copied.
            return new StreamWriteMessage { PayloadCase = StreamWriteRegionRequest.PayloadOneofCase.Data, Length = (int)dataLength };
        }

        // Header (or nothing): small, parsed the ordinary way (merges repeated headers as protobuf does).
        StreamWriteRegionRequest message;
        try
        {
            message = StreamWriteRegionRequest.Parser.ParseFrom(payload);
        }
        catch (Exception e)
        {
            return new StreamWriteMessage { Fault = Malformed.Exception("StreamWriteRegionRequest", e.Message, e) };
        }

        return new StreamWriteMessage
        {
            PayloadCase = message.PayloadCase,
            Header = message.PayloadCase == StreamWriteRegionRequest.PayloadOneofCase.Header ? message.Header : null,
        };
    }

    private StreamWriteMessage Copy(in ReadOnlySequence<byte> data)
    {
        var chunk = _chunk;
        chunk.Fault = null;
        chunk.Length = (int)data.Length;
        try
        {
            var length = (ulong)data.Length;
            if (length > Limit - End)
            {
                RegionRange.Check(Lease.Name, _checkSize, End, length, "header.offset", "data");
            }

            Lease.ThrowIfDeleted();
            _badBlocks?.ClearBeforeWrite(Lease, End, length);
            var map = Lease.Map;
            foreach (var segment in data)
            {
                map.CopyNonTemporalDeferred(End, segment.Span);
                Crc.Append(segment.Span);
                End += (ulong)segment.Length;
            }

            // Fence this chunk's NT stores on the thread that made them; CompleteDeferred runs on another one.
            map.Drain();
        }
        catch (Exception e)
        {
            chunk.Fault = e;
        }

        return chunk;
    }
}
