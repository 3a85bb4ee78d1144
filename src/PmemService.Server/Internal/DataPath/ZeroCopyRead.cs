using Grpc.Core;

namespace PmemService.Server.Internal.DataPath;

/// <summary>Reads region bytes into memory the caller owns (<see cref="RegionLease.Read"/>: pread on the region file).</summary>
internal interface IRegionReader
{
    void Read(ulong offset, Span<byte> destination);
}

/// <summary>
/// One StreamReadRegionResponse that is not built in memory: <see cref="StreamReadChunkSerializer"/>
/// preads its bytes straight into the response pipe when grpc-dotnet serializes it. The handler reuses
/// one instance for the whole call (every WriteAsync has serialized its message before it completes).
/// </summary>
internal sealed class ZeroCopyReadChunk
{
    public ZeroCopyReadChunk(IRegionReader source) => Source = source;

    /// <summary>Where the bytes come from: the handler's lease, held across every WriteAsync.</summary>
    public IRegionReader Source { get; }

    /// <summary>Region offset of the first byte (the message's <c>offset</c> field).</summary>
    public ulong Offset { get; set; }

    /// <summary>Bytes in the chunk (the message's <c>data</c> field).</summary>
    public int Length { get; set; }

    /// <summary>
    /// Why the read failed inside the serializer (the file was truncated between the handler's checks
    /// and the pread, or EIO); the message then went out with empty <c>data</c> and the handler throws this.
    /// </summary>
    public Exception? Fault { get; set; }
}

/// <summary>
/// The StreamReadRegion response serializer: one copy, pread from the region file into the HTTP/2
/// response pipe (before: pread into a pooled buffer, then protobuf copied that into the pipe).
/// <para>
/// grpc-dotnet (HttpContextSerializationContext) writes straight into the response PipeWriter when the
/// payload length is set and the response is not compressed: <c>GetBufferWriter</c> first writes the
/// 5-byte message header (length = the payload length) into the pipe and returns the pipe itself.
/// With compression (not configured by this service) it hands out a buffer and copies; this code
/// works the same either way.
/// </para>
/// <para>
/// Once that header is in the pipe, a throw would leave a torn frame (the client sees INTERNAL
/// "incomplete message" instead of the reason), so nothing after <c>GetBufferWriter</c> throws: a
/// failed or short read still writes a message of exactly the announced size, with the chunk's bytes
/// zeroed and carried in field 15 (not in StreamReadRegionResponse, so every parser skips it as an
/// unknown field) instead of <c>data</c>; the message parses as <c>offset</c> + empty <c>data</c>, and
/// the exception goes to <see cref="ZeroCopyReadChunk.Fault"/> for the handler to throw, which ends
/// the call with the same status as before.
/// </para>
/// </summary>
internal static class StreamReadChunkSerializer
{
    /// <summary>StreamReadRegionResponse.offset: field 1, varint.</summary>
    internal const byte OffsetTag = (1 << 3) | 0;

    /// <summary>StreamReadRegionResponse.data: field 2, length-delimited.</summary>
    internal const byte DataTag = (2 << 3) | 2;

    /// <summary>
    /// The field a failed chunk's zeroed bytes go in: 15, length-delimited (a one-byte tag like
    /// <see cref="DataTag"/>, so the message keeps the size announced in its header).
    /// </summary>
    internal const byte FaultTag = (15 << 3) | 2;

    public static void Serialize(ZeroCopyReadChunk chunk, SerializationContext context)
    {
        var length = chunk.Length;
        // Proto3 omits default values: no offset field at 0 and no data field when empty, exactly like
        // the generated serializer (the handler never sends an empty chunk).
        var offsetSize = chunk.Offset == 0 ? 0 : 1 + VarintSize(chunk.Offset);
        var dataPrefix = length == 0 ? 0 : 1 + VarintSize((ulong)length);
        var size = offsetSize + dataPrefix + length;

        // May throw (RESOURCE_EXHAUSTED above the send limit): nothing is in the pipe yet.
        context.SetPayloadLength(size);
        var writer = context.GetBufferWriter();

        // From here on nothing may throw (see the class comment).
        var message = writer.GetSpan(size)[..size];
        var prefix = offsetSize + dataPrefix;
        var data = message[prefix..];
        var tag = DataTag;
        try
        {
            chunk.Source.Read(chunk.Offset, data);
        }
        catch (Exception e)
        {
            // Short (truncated underneath) or failed: none of these bytes may reach the client as data.
            data.Clear();
            tag = FaultTag;
            chunk.Fault = e;
        }

        if (offsetSize > 0)
        {
            message[0] = OffsetTag;
            WriteVarint(message[1..], chunk.Offset);
        }

        if (dataPrefix > 0)
        {
            message[offsetSize] = tag;
            WriteVarint(message[(offsetSize + 1)..], (ulong)length);
        }

        writer.Advance(size);
        context.Complete();
    }

    internal static int VarintSize(ulong value)
    {
        var size = 1;
        while (value >= 0x80)
        {
            value >>= 7;
            size++;
        }

        return size;
    }

    private static void WriteVarint(Span<byte> destination, ulong value)
    {
        var i = 0;
        while (value >= 0x80)
        {
            destination[i++] = (byte)(value | 0x80);
            value >>= 7;
        }

        destination[i] = (byte)value;
    }
}
