namespace Pmem2;

/// <summary>
/// The one exception type of the library: a libpmem2 error code (or a negated errno) and a
/// libpmem2-like message.
/// </summary>
public sealed class Pmem2Exception : IOException
{
    /// <summary>Creates an exception for <paramref name="code"/>.</summary>
    public Pmem2Exception(Pmem2ErrorCode code, string message)
        : base(message, (int)code)
    {
        Code = code;
    }

    /// <summary>An exception for a failed persist (sticky: see <see cref="Pmem2Map.PersistFailure"/>).</summary>
    internal Pmem2Exception(Pmem2ErrorCode code, string message, Exception? inner, bool persistFailure)
        : base(message, inner)
    {
        HResult = (int)code;
        Code = code;
        IsPersistFailure = persistFailure;
    }

    /// <summary>The PMEM2_E_* code, or a negated errno (see <see cref="Errno"/>).</summary>
    public Pmem2ErrorCode Code { get; }

    /// <summary>The errno when <see cref="Code"/> is a negated errno passed through; otherwise 0.</summary>
    public int Errno => (int)Code < 0 && (int)Code > -4096 ? -(int)Code : 0;

    /// <summary>
    /// True when a persist of a map failed (msync, deep flush): the bytes the call covered may not be
    /// persistent, and the map refuses every later persist (<see cref="Pmem2Map.PersistFailure"/>).
    /// </summary>
    public bool IsPersistFailure { get; }
}
