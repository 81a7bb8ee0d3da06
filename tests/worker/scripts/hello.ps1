Write-Output "hello from powershell"
