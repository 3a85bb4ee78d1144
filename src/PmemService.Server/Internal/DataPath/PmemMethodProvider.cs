using Google.Protobuf;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;
using PmemService.Contracts.V1;
using GeneratedService = PmemService.Contracts.V1.PmemService;

namespace PmemService.Server.Internal.DataPath;

/// <summary>
/// Binds pmem.v1.PmemService for <see cref="PmemGrpcService"/> with our own marshallers (what the
/// generated BindService would do, with different request deserializers and one response serializer):
/// <list type="bullet">
/// <item>WriteRegion and StreamWriteRegion: zero-copy deserializers that copy the data field from the
/// request buffers straight into the mapping (<see cref="WriteRegionDeserializer"/>, <see cref="StreamWriteSink"/>);</item>
/// <item>StreamReadRegion: a response serializer that preads each chunk from the region file straight
/// into the response pipe (<see cref="StreamReadChunkSerializer"/>); the wire format is the generated one;</item>
/// <item>every other method: the generated protobuf parser, but a malformed body is INVALID_ARGUMENT
/// MALFORMED_MESSAGE instead of grpc-dotnet's UNKNOWN.</item>
/// </list>
/// The generated binder is switched off by <see cref="PmemServiceBinding"/> (the BindServiceMethod
/// attribute on the service points at its no-op bind method), so each method is bound exactly once;
/// reflection still finds the service descriptor through that attribute.
/// </summary>
internal sealed class PmemMethodProvider : IServiceMethodProvider<PmemGrpcService>
{
    private static readonly string ServiceName = GeneratedService.Descriptor.FullName;

    private readonly WriteRegionDeserializer _writeRegion;

    public PmemMethodProvider(RegionManager regions, RegionBadBlocks badBlocks, UnixPeerAdmission admission, IHttpContextAccessor httpContextAccessor, IOptions<PmemServiceOptions> options)
    {
        _writeRegion = new WriteRegionDeserializer(regions, badBlocks, admission, httpContextAccessor, options.Value);
    }

    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<PmemGrpcService> context)
    {
        var metadata = typeof(PmemGrpcService).GetCustomAttributes(inherit: true).ToList();

        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.MapRegion), MapRegionRequest.Parser, MapRegionResponse.Parser), metadata,
            static (service, request, call) => service.MapRegion(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.UnmapRegion), UnmapRegionRequest.Parser, UnmapRegionResponse.Parser), metadata,
            static (service, request, call) => service.UnmapRegion(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.GetRegion), GetRegionRequest.Parser, GetRegionResponse.Parser), metadata,
            static (service, request, call) => service.GetRegion(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.ListRegions), ListRegionsRequest.Parser, ListRegionsResponse.Parser), metadata,
            static (service, request, call) => service.ListRegions(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.DeleteRegion), DeleteRegionRequest.Parser, DeleteRegionResponse.Parser), metadata,
            static (service, request, call) => service.DeleteRegion(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.ReadRegion), ReadRegionRequest.Parser, ReadRegionResponse.Parser), metadata,
            static (service, request, call) => service.ReadRegion(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.PersistRegion), PersistRegionRequest.Parser, PersistRegionResponse.Parser), metadata,
            static (service, request, call) => service.PersistRegion(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.SetRegionContent), SetRegionContentRequest.Parser, SetRegionContentResponse.Parser), metadata,
            static (service, request, call) => service.SetRegionContent(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.OpenDirect), OpenDirectRequest.Parser, OpenDirectResponse.Parser), metadata,
            static (service, request, call) => service.OpenDirect(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.GetRegionAccess), GetRegionAccessRequest.Parser, GetRegionAccessResponse.Parser), metadata,
            static (service, request, call) => service.GetRegionAccess(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.SetRegionAccess), SetRegionAccessRequest.Parser, SetRegionAccessResponse.Parser), metadata,
            static (service, request, call) => service.SetRegionAccess(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.AtomicWrite), AtomicWriteRequest.Parser, AtomicWriteResponse.Parser), metadata,
            static (service, request, call) => service.AtomicWrite(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.CompareAndSwap), CompareAndSwapRequest.Parser, CompareAndSwapResponse.Parser), metadata,
            static (service, request, call) => service.CompareAndSwap(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.FetchAdd), FetchAddRequest.Parser, FetchAddResponse.Parser), metadata,
            static (service, request, call) => service.FetchAdd(request, call));
        context.AddUnaryMethod(Unary(nameof(GeneratedService.PmemServiceBase.GetUpload), GetUploadRequest.Parser, GetUploadResponse.Parser), metadata,
            static (service, request, call) => service.GetUpload(request, call));
        context.AddServerStreamingMethod(
            new Method<WatchRegionRequest, WatchRegionResponse>(MethodType.ServerStreaming, ServiceName, nameof(GeneratedService.PmemServiceBase.WatchRegion),
                ProtoMarshaller.Create(WatchRegionRequest.Parser), ProtoMarshaller.Create(WatchRegionResponse.Parser)),
            metadata,
            static (service, request, stream, call) => service.WatchRegion(request, stream, call));
        context.AddServerStreamingMethod(
            new Method<StreamReadRegionRequest, ZeroCopyReadChunk>(MethodType.ServerStreaming, ServiceName, nameof(GeneratedService.PmemServiceBase.StreamReadRegion),
                ProtoMarshaller.Create(StreamReadRegionRequest.Parser),
                Marshallers.Create<ZeroCopyReadChunk>(StreamReadChunkSerializer.Serialize, static _ => throw new NotSupportedException("responses are not deserialized by the server"))),
            metadata,
            static (service, request, stream, call) => service.StreamReadRegion(request, stream, call));

        context.AddUnaryMethod(
            new Method<ZeroCopyWrite, WriteRegionResponse>(MethodType.Unary, ServiceName, nameof(GeneratedService.PmemServiceBase.WriteRegion),
                Marshallers.Create<ZeroCopyWrite>(static (_, _) => throw new NotSupportedException("requests are not serialized by the server"), _writeRegion.Deserialize),
                ProtoMarshaller.Create(WriteRegionResponse.Parser)),
            metadata,
            static (service, request, call) => service.WriteRegion(request, call));
        context.AddClientStreamingMethod(
            new Method<StreamWriteMessage, StreamWriteRegionResponse>(MethodType.ClientStreaming, ServiceName, nameof(GeneratedService.PmemServiceBase.StreamWriteRegion),
                Marshallers.Create<StreamWriteMessage>(static (_, _) => throw new NotSupportedException("requests are not serialized by the server"), StreamWriteSink.Deserialize),
                ProtoMarshaller.Create(StreamWriteRegionResponse.Parser)),
            metadata,
            static (service, stream, call) => service.StreamWriteRegion(stream, call));

        // The generated binder is off, so a method added to the proto and not bound above would be
        // UNIMPLEMENTED at run time: refuse to start instead.
        var bound = new[]
        {
            nameof(GeneratedService.PmemServiceBase.MapRegion), nameof(GeneratedService.PmemServiceBase.UnmapRegion),
            nameof(GeneratedService.PmemServiceBase.GetRegion), nameof(GeneratedService.PmemServiceBase.ListRegions),
            nameof(GeneratedService.PmemServiceBase.DeleteRegion), nameof(GeneratedService.PmemServiceBase.ReadRegion),
            nameof(GeneratedService.PmemServiceBase.PersistRegion), nameof(GeneratedService.PmemServiceBase.SetRegionContent),
            nameof(GeneratedService.PmemServiceBase.OpenDirect), nameof(GeneratedService.PmemServiceBase.StreamReadRegion),
            nameof(GeneratedService.PmemServiceBase.WriteRegion), nameof(GeneratedService.PmemServiceBase.StreamWriteRegion),
            nameof(GeneratedService.PmemServiceBase.GetRegionAccess), nameof(GeneratedService.PmemServiceBase.SetRegionAccess),
            nameof(GeneratedService.PmemServiceBase.AtomicWrite), nameof(GeneratedService.PmemServiceBase.CompareAndSwap),
            nameof(GeneratedService.PmemServiceBase.FetchAdd), nameof(GeneratedService.PmemServiceBase.GetUpload),
            nameof(GeneratedService.PmemServiceBase.WatchRegion),
        };
        var unbound = GeneratedService.Descriptor.Methods.Select(m => m.Name).Except(bound, StringComparer.Ordinal).ToList();
        if (unbound.Count > 0)
        {
            throw new InvalidOperationException($"pmem.v1 methods not bound by {nameof(PmemMethodProvider)}: {string.Join(", ", unbound)}.");
        }
    }

    private static Method<TRequest, TResponse> Unary<TRequest, TResponse>(string name, MessageParser<TRequest> request, MessageParser<TResponse> response)
        where TRequest : class, IMessage<TRequest>, IBufferMessage
        where TResponse : class, IMessage<TResponse>, IBufferMessage =>
        new(MethodType.Unary, ServiceName, name, ProtoMarshaller.Create(request), ProtoMarshaller.Create(response));
}

/// <summary>Protobuf marshallers (the generated code's, reading from the payload sequence) with MALFORMED_MESSAGE for bad bodies.</summary>
internal static class ProtoMarshaller
{
    public static Marshaller<T> Create<T>(MessageParser<T> parser)
        where T : class, IMessage<T>, IBufferMessage =>
        Marshallers.Create<T>(
            static (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context =>
            {
                try
                {
                    return parser.ParseFrom(context.PayloadAsReadOnlySequence());
                }
                catch (Exception e) when (e is InvalidProtocolBufferException or System.Text.DecoderFallbackException or ArgumentException)
                {
                    throw Malformed.Rpc(typeof(T).Name, e.Message, e);
                }
            });
}

/// <summary>
/// Target of the <c>BindServiceMethod</c> attribute on <see cref="PmemGrpcService"/>: binds nothing
/// (<see cref="PmemMethodProvider"/> binds every method) and tells reflection the service descriptor.
/// </summary>
internal static class PmemServiceBinding
{
    /// <summary>The pmem.v1.PmemService descriptor (read by grpc reflection).</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => GeneratedService.Descriptor;

    /// <summary>Called by grpc-dotnet's generated-code binder: intentionally binds nothing.</summary>
    public static void BindService(ServiceBinderBase binder, PmemGrpcService service)
    {
        _ = binder;
        _ = service;
    }
}
