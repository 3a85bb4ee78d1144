// Placeholder entry point; the service host is wired up in PmemService.Server (AddPmem / MapPmemServices).
return 0;
