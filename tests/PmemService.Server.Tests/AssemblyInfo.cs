// The service and its tests run on Linux (Unix sockets, file modes, pmem2).
[assembly: System.Runtime.Versioning.SupportedOSPlatform("linux")]
