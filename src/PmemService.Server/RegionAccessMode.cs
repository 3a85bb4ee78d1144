namespace PmemService.Server;

/// <summary>PmemService:RegionAccess: whether callers share one namespace of regions or see only their own.</summary>
public enum RegionAccessMode
{
    /// <summary>Each region has an owner and an access list; callers see and use only what they may (the default).</summary>
    Isolated = 0,

    /// <summary>Every admitted caller uses every region; owners are recorded (and quotas apply) but not enforced.</summary>
    Shared = 1,
}
