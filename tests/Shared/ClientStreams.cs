using Grpc.Core;

namespace PmemTests.Shared;

/// <summary>Client-stream helpers shared by the service test projects.</summary>
public static class ClientStreams
{
    /// <summary>
    /// Sends a client stream's messages (<paramref name="send"/>, ending with CompleteAsync) for a call that may be
    /// answered early: when the server ends the call while messages are still being sent, a write races that answer and
    /// fails as CANCELLED (the HTTP/2 stream was reset under it) or "the call is complete"; the caller then awaits the
    /// call, whose status is the server's.
    /// </summary>
    public static async Task SendAsync<TRequest, TResponse>(AsyncClientStreamingCall<TRequest, TResponse> call, Func<Task> send)
    {
        ArgumentNullException.ThrowIfNull(call);
        ArgumentNullException.ThrowIfNull(send);
        try
        {
            await send();
        }
        catch (Exception e) when (e is InvalidOperationException or RpcException { StatusCode: StatusCode.Cancelled })
        {
        }
    }
}
