using System.Buffers.Binary;
using System.Net;
using System.Net.Http.Headers;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Google.Rpc;
using PmemService.Contracts.V1;

namespace PmemService.Client.Tests;

/// <summary>
/// What the SDK does with the StreamReadRegion answer of a chunk whose pread failed inside the server's
/// response serializer (the file truncated underneath between the server's checks and the read, or
/// EIO): the message went out with the chunk's offset and empty <c>data</c> (the zeroed bytes in an
/// unknown field 15), followed by the error status. The server's side is ZeroCopyReadTests and
/// FuseFaultTests; here the exact bytes are played back by a handler, so the sequence is deterministic.
/// </summary>
public sealed class DownloadFaultTests
{
    private const int Chunk = 64 << 10;

    [Theory]
    [InlineData(2 * Chunk)]
    [InlineData(0)] // to the end of the region: the length the SDK could check against is unknown
    public async Task A_chunk_failed_in_the_serializer_is_the_status_that_follows_it_and_writes_nothing(long length)
    {
        var good = TestData.Bytes(Chunk, 21);
        var handler = new FailedChunkHandler(good);
        using var client = new PmemClient("http://127.0.0.1:1", new PmemClientOptions
        {
            HttpHandler = handler,
            ReadChunkSize = Chunk,
            InitialBackoff = TimeSpan.FromMilliseconds(5),
            MaxBackoff = TimeSpan.FromMilliseconds(10),
        });
        var destination = new MemoryStream();
        var reports = new List<long>();

        var error = await Assert.ThrowsAsync<PmemException>(() => client.DownloadAsync("r", destination, 0, length, new SyncProgress(reports.Add)));

        Assert.Equal(PmemErrorKind.DataLoss, error.Kind);
        Assert.Equal("REGION_FILE_CHANGED", error.Reason);
        Assert.Equal(good, destination.ToArray()); // the good chunk, and nothing for the failed one
        Assert.Equal(Chunk, reports.Max());
        Assert.Equal(1, handler.Requests); // DATA_LOSS is not resumed
    }

    /// <summary>Plays back: one good chunk at 0, the failed chunk at <see cref="Chunk"/>, DATA_LOSS REGION_FILE_CHANGED.</summary>
    private sealed class FailedChunkHandler(byte[] good) : HttpMessageHandler
    {
        public int Requests { get; private set; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            Requests++;
            Assert.EndsWith("/pmem.v1.PmemService/StreamReadRegion", request.RequestUri!.AbsolutePath, StringComparison.Ordinal);

            var body = new MemoryStream();
            Frame(body, new StreamReadRegionResponse { Offset = 0, Data = ByteString.CopyFrom(good) }.ToByteArray());
            // The failed chunk as StreamReadChunkSerializer writes it: offset (field 1), then the chunk's
            // length of zeros in field 15 where data (field 2) would be.
            var failed = new MemoryStream();
            var output = new CodedOutputStream(failed);
            output.WriteTag(1, WireFormat.WireType.Varint);
            output.WriteUInt64(Chunk);
            output.WriteTag(15, WireFormat.WireType.LengthDelimited);
            output.WriteBytes(ByteString.CopyFrom(new byte[Chunk]));
            output.Flush();
            Frame(body, failed.ToArray());

            var response = new HttpResponseMessage(HttpStatusCode.OK)
            {
                Version = HttpVersion.Version20,
                Content = new ByteArrayContent(body.ToArray()),
                RequestMessage = request,
            };
            response.Content.Headers.ContentType = new MediaTypeHeaderValue("application/grpc");
            const string message = "Region 'r' changed outside the service: the file is shorter than the mapping.";
            var status = new Google.Rpc.Status
            {
                Code = (int)Grpc.Core.StatusCode.DataLoss,
                Message = message,
                Details = { Any.Pack(new ErrorInfo { Reason = "REGION_FILE_CHANGED", Domain = "pmem.v1" }) },
            };
            response.TrailingHeaders.Add("grpc-status", ((int)Grpc.Core.StatusCode.DataLoss).ToString(System.Globalization.CultureInfo.InvariantCulture));
            response.TrailingHeaders.Add("grpc-message", Uri.EscapeDataString(message));
            response.TrailingHeaders.Add("grpc-status-details-bin", Convert.ToBase64String(status.ToByteArray()).TrimEnd('='));
            return Task.FromResult(response);
        }

        private static void Frame(MemoryStream body, byte[] message)
        {
            Span<byte> header = stackalloc byte[5];
            header[0] = 0;
            BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)message.Length);
            body.Write(header);
            body.Write(message);
        }
    }
}
