namespace Pmem2;

/// <summary>A callback given a writable view of part of a mapping, valid only during the call.</summary>
public delegate void Pmem2SpanAction(Span<byte> span);

/// <summary>A callback given a writable view of part of a mapping and a caller state, valid only during the call.</summary>
public delegate void Pmem2SpanAction<in TState>(Span<byte> span, TState state)
    where TState : allows ref struct;

/// <summary>A callback given a read-only view of part of a mapping, valid only during the call.</summary>
public delegate TResult Pmem2ReadOnlySpanFunc<out TResult>(ReadOnlySpan<byte> span);
