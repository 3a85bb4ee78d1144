using Google.Rpc;
using Grpc.Core;
using Grpc.Core.Interceptors;

namespace PmemService.Server.Internal;

/// <summary>
/// Counts failed calls in <c>pmem.errors</c> by gRPC status and the stable ErrorInfo reason. Registered
/// before (outside) <see cref="ErrorMappingInterceptor"/>, so it sees the final <see cref="RpcException"/>
/// with its google.rpc.Status details and never changes it.
/// </summary>
internal sealed class ErrorMetricsInterceptor : Interceptor
{
    private readonly PmemMetrics _metrics;

    public ErrorMetricsInterceptor(PmemMetrics metrics) => _metrics = metrics;

    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(request, context).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            Count(e, context);
            throw;
        }
    }

    public override async Task<TResponse> ClientStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, ServerCallContext context, ClientStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            return await continuation(requestStream, context).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            Count(e, context);
            throw;
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context).ConfigureAwait(false);
        }
        catch (RpcException e)
        {
            Count(e, context);
            throw;
        }
    }

    private void Count(RpcException e, ServerCallContext context)
    {
        if (!context.Method.StartsWith("/pmem.v1.", StringComparison.Ordinal))
        {
            return;
        }

        var reason = e.GetRpcStatus()?.GetDetail<ErrorInfo>()?.Reason;
        var method = context.Method[(context.Method.LastIndexOf('/') + 1)..];
        _metrics.Failed(e.StatusCode.ToString(), string.IsNullOrEmpty(reason) ? "UNKNOWN" : reason, method);
    }
}
