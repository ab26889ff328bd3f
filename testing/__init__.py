"""Test aids: the loss audit, the Modbus wire recorder and fakes. Production code never imports it."""
