"""The MCP endpoint: a tenant's active workers as Model Context Protocol tools."""
