"""Sheet imports (CSV, XLSX, provisioning records): the column schema, the readers, and the
importer that validates every row before it writes any."""
