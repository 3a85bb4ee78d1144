using System.Buffers;
using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using PmemService.Contracts.V1;
using GeneratedService = PmemService.Contracts.V1.PmemService;

namespace PmemService.Benchmarks;

/// <summary>
/// The transport ceiling (<c>--null-sink</c>): the sink's Kestrel and gRPC settings, but WriteRegion and
/// StreamWriteRegion requests are never parsed into a message: their deserializers only walk the
/// protobuf tags of the payload sequence to count the <c>data</c> bytes (no copy, no allocation per
/// message). No server can do less work per call, so "service / null sink" is how close the service
/// is to the ceiling, and "sink / null sink" is what the sink's ByteString copy costs.
/// </summary>
[BindServiceMethod(typeof(NullSinkBinding), nameof(NullSinkBinding.BindService))]
internal sealed class NullSinkService
{
}

/// <summary>Binds nothing (<see cref="NullSinkMethodProvider"/> binds the methods the bench calls).</summary>
internal static class NullSinkBinding
{
    public static void BindService(ServiceBinderBase binder, NullSinkService service)
    {
        _ = binder;
        _ = service;
    }
}

internal sealed class NullSinkMethodProvider : IServiceMethodProvider<NullSinkService>
{
    private static readonly string ServiceName = GeneratedService.Descriptor.FullName;

    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<NullSinkService> context)
    {
        var metadata = new List<object>();
        context.AddUnaryMethod(
            new Method<MapRegionRequest, MapRegionResponse>(MethodType.Unary, ServiceName, "MapRegion", Proto(MapRegionRequest.Parser), Proto(MapRegionResponse.Parser)),
            metadata,
            static (_, request, _) => Task.FromResult(new MapRegionResponse { Region = new RegionInfo { Name = request.Name, Size = request.Size, Mapped = true, MapReferences = 1 } }));
        context.AddUnaryMethod(
            new Method<DataCount, WriteRegionResponse>(MethodType.Unary, ServiceName, "WriteRegion", Counting(dataField: 3), Proto(WriteRegionResponse.Parser)),
            metadata,
            static (_, request, _) => Task.FromResult(new WriteRegionResponse { BytesWritten = (ulong)request.Bytes, Persisted = true }));
        context.AddClientStreamingMethod(
            new Method<DataCount, StreamWriteRegionResponse>(MethodType.ClientStreaming, ServiceName, "StreamWriteRegion", Counting(dataField: 2), Proto(StreamWriteRegionResponse.Parser)),
            metadata,
            static async (_, stream, _) =>
            {
                long total = 0;
                while (await stream.MoveNext().ConfigureAwait(false))
                {
                    total += stream.Current.Bytes;
                }

                return new StreamWriteRegionResponse { BytesPersisted = (ulong)total, PersistedOffset = (ulong)total };
            });
    }

    private static Marshaller<T> Proto<T>(MessageParser<T> parser)
        where T : class, IMessage<T>, IBufferMessage =>
        Marshallers.Create<T>(
            static (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => parser.ParseFrom(context.PayloadAsReadOnlySequence()));

    /// <summary>Counts the bytes of length-delimited field <paramref name="dataField"/> without reading them.</summary>
    private static Marshaller<DataCount> Counting(int dataField) =>
        Marshallers.Create<DataCount>(
            static (_, _) => throw new NotSupportedException(),
            context =>
            {
                var reader = new SequenceReader<byte>(context.PayloadAsReadOnlySequence());
                long bytes = 0;
                while (!reader.End)
                {
                    var tag = ReadVarint(ref reader);
                    switch ((int)(tag & 7))
                    {
                        case 0:
                            ReadVarint(ref reader);
                            break;
                        case 1:
                            reader.Advance(8);
                            break;
                        case 2:
                            var length = (long)ReadVarint(ref reader);
                            if ((int)(tag >> 3) == dataField)
                            {
                                bytes += length;
                            }

                            reader.Advance(length);
                            break;
                        case 5:
                            reader.Advance(4);
                            break;
                        default:
                            throw new InvalidOperationException("unexpected wire type");
                    }
                }

                return new DataCount(bytes);
            });

    private static ulong ReadVarint(ref SequenceReader<byte> reader)
    {
        ulong value = 0;
        for (var shift = 0; shift < 64; shift += 7)
        {
            if (!reader.TryRead(out var b))
            {
                throw new InvalidOperationException("truncated varint");
            }

            value |= (ulong)(b & 0x7F) << shift;
            if (b < 0x80)
            {
                return value;
            }
        }

        throw new InvalidOperationException("varint too long");
    }
}

/// <summary>What the null sink keeps of a request: the number of data bytes.</summary>
internal sealed record DataCount(long Bytes);
