package main

// schemaJSON is a compact Pulumi package schema describing what this provider implements (the shape of
// pulumi-command 1.2.1's schema, without the long-form documentation).
const schemaJSON = `{
  "name": "command",
  "displayName": "Command",
  "version": "1.2.1",
  "description": "The Pulumi Command Provider enables you to execute commands and scripts either locally or remotely as part of the Pulumi resource model.",
  "publisher": "Pulumi",
  "repository": "https://github.com/pulumi/pulumi-command",
  "license": "Apache-2.0",
  "config": {},
  "provider": {"type": "object"},
  "types": {
    "command:local:Logging": {
      "type": "string",
      "enum": [
        {"name": "Stdout", "value": "stdout", "description": "Capture stdout in logs but not stderr"},
        {"name": "Stderr", "value": "stderr", "description": "Capture stderr in logs but not stdout"},
        {"name": "StdoutAndStderr", "value": "stdoutAndStderr", "description": "Capture stdout and stderr in logs"},
        {"name": "None", "value": "none", "description": "Capture no logs"}
      ]
    },
    "command:remote:Logging": {
      "type": "string",
      "enum": [
        {"name": "Stdout", "value": "stdout", "description": "Capture stdout in logs but not stderr"},
        {"name": "Stderr", "value": "stderr", "description": "Capture stderr in logs but not stdout"},
        {"name": "StdoutAndStderr", "value": "stdoutAndStderr", "description": "Capture stdout and stderr in logs"},
        {"name": "None", "value": "none", "description": "Capture no logs"}
      ]
    },
    "command:remote:Connection": {
      "type": "object",
      "description": "Instructions for how to connect to a remote endpoint.",
      "properties": {
        "agentSocketPath": {"type": "string", "description": "SSH Agent socket path. Default to environment variable SSH_AUTH_SOCK if present."},
        "dialErrorLimit": {"type": "integer", "default": 10, "description": "Max allowed errors on trying to dial the remote host. -1 set count to unlimited. Default value is 10."},
        "host": {"type": "string", "description": "The address of the resource to connect to."},
        "hostKey": {"type": "string", "description": "The expected host key to verify the server's identity. If not provided, the host key will be ignored."},
        "password": {"type": "string", "secret": true, "description": "The password we should use for the connection."},
        "perDialTimeout": {"type": "integer", "default": 15, "description": "Max number of seconds for each dial attempt. 0 implies no maximum. Default value is 15 seconds."},
        "port": {"type": "number", "default": 22, "description": "The port to connect to. Defaults to 22."},
        "privateKey": {"type": "string", "secret": true, "description": "The contents of an SSH key to use for the connection. This takes preference over the password if provided."},
        "privateKeyPassword": {"type": "string", "secret": true, "description": "The password to use in case the private key is encrypted."},
        "proxy": {"$ref": "#/types/command:remote:ProxyConnection", "description": "The connection settings for the bastion/proxy host."},
        "user": {"type": "string", "default": "root", "description": "The user that we should use for the connection."}
      },
      "required": ["host"]
    },
    "command:remote:ProxyConnection": {
      "type": "object",
      "description": "Instructions for how to connect to a remote endpoint via a bastion host.",
      "properties": {
        "agentSocketPath": {"type": "string", "description": "SSH Agent socket path. Default to environment variable SSH_AUTH_SOCK if present."},
        "dialErrorLimit": {"type": "integer", "default": 10, "description": "Max allowed errors on trying to dial the remote host. -1 set count to unlimited. Default value is 10."},
        "host": {"type": "string", "description": "The address of the bastion host to connect to."},
        "hostKey": {"type": "string", "description": "The expected host key to verify the server's identity. If not provided, the host key will be ignored."},
        "password": {"type": "string", "secret": true, "description": "The password we should use for the connection to the bastion host."},
        "perDialTimeout": {"type": "integer", "default": 15, "description": "Max number of seconds for each dial attempt. 0 implies no maximum. Default value is 15 seconds."},
        "port": {"type": "number", "default": 22, "description": "The port of the bastion host to connect to."},
        "privateKey": {"type": "string", "secret": true, "description": "The contents of an SSH key to use for the connection. This takes preference over the password if provided."},
        "privateKeyPassword": {"type": "string", "secret": true, "description": "The password to use in case the private key is encrypted."},
        "user": {"type": "string", "default": "root", "description": "The user that we should use for the connection to the bastion host."}
      },
      "required": ["host"]
    }
  },
  "resources": {
    "command:local:Command": {
      "description": "A local command to be executed.",
      "properties": {
        "addPreviousOutputInEnv": {"type": "boolean"},
        "archive": {"$ref": "pulumi.json#/Archive"},
        "archivePaths": {"type": "array", "items": {"type": "string"}},
        "assetPaths": {"type": "array", "items": {"type": "string"}},
        "assets": {"type": "object", "additionalProperties": {"$ref": "pulumi.json#/Asset"}},
        "create": {"type": "string"},
        "delete": {"type": "string"},
        "dir": {"type": "string"},
        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
        "interpreter": {"type": "array", "items": {"type": "string"}},
        "logging": {"$ref": "#/types/command:local:Logging"},
        "stderr": {"type": "string"},
        "stdin": {"type": "string"},
        "stdout": {"type": "string"},
        "triggers": {"type": "array", "items": {"$ref": "pulumi.json#/Any"}, "replaceOnChanges": true},
        "update": {"type": "string"}
      },
      "required": ["stderr", "stdout"],
      "inputProperties": {
        "addPreviousOutputInEnv": {"type": "boolean", "default": true},
        "archivePaths": {"type": "array", "items": {"type": "string"}},
        "assetPaths": {"type": "array", "items": {"type": "string"}},
        "create": {"type": "string"},
        "delete": {"type": "string"},
        "dir": {"type": "string"},
        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
        "interpreter": {"type": "array", "items": {"type": "string"}},
        "logging": {"$ref": "#/types/command:local:Logging"},
        "stdin": {"type": "string"},
        "triggers": {"type": "array", "items": {"$ref": "pulumi.json#/Any"}, "replaceOnChanges": true},
        "update": {"type": "string"}
      }
    },
    "command:remote:Command": {
      "description": "A command to run on a remote host. The connection is established via ssh.",
      "properties": {
        "addPreviousOutputInEnv": {"type": "boolean"},
        "connection": {"$ref": "#/types/command:remote:Connection", "secret": true},
        "create": {"type": "string"},
        "delete": {"type": "string"},
        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
        "logging": {"$ref": "#/types/command:remote:Logging"},
        "stderr": {"type": "string"},
        "stdin": {"type": "string"},
        "stdout": {"type": "string"},
        "triggers": {"type": "array", "items": {"$ref": "pulumi.json#/Any"}, "replaceOnChanges": true},
        "update": {"type": "string"}
      },
      "required": ["connection", "stderr", "stdout"],
      "inputProperties": {
        "addPreviousOutputInEnv": {"type": "boolean", "default": true},
        "connection": {"$ref": "#/types/command:remote:Connection", "secret": true},
        "create": {"type": "string"},
        "delete": {"type": "string"},
        "environment": {"type": "object", "additionalProperties": {"type": "string"}},
        "logging": {"$ref": "#/types/command:remote:Logging"},
        "stdin": {"type": "string"},
        "triggers": {"type": "array", "items": {"$ref": "pulumi.json#/Any"}, "replaceOnChanges": true},
        "update": {"type": "string"}
      },
      "requiredInputs": ["connection"]
    },
    "command:remote:CopyToRemote": {
      "description": "Copy an Asset or Archive to a remote host.",
      "properties": {
        "connection": {"$ref": "#/types/command:remote:Connection", "secret": true},
        "remotePath": {"type": "string"},
        "source": {"$ref": "pulumi.json#/Asset"},
        "triggers": {"type": "array", "items": {"$ref": "pulumi.json#/Any"}, "replaceOnChanges": true}
      },
      "required": ["connection", "remotePath", "source"],
      "inputProperties": {
        "connection": {"$ref": "#/types/command:remote:Connection", "secret": true},
        "remotePath": {"type": "string"},
        "source": {"$ref": "pulumi.json#/Asset"},
        "triggers": {"type": "array", "items": {"$ref": "pulumi.json#/Any"}, "replaceOnChanges": true}
      },
      "requiredInputs": ["connection", "remotePath", "source"]
    },
    "command:remote:CopyFile": {
      "description": "Copy a local file to a remote host.",
      "deprecationMessage": "This resource is deprecated and will be removed in a future release. Please use the CopyToRemote resource instead.",
      "properties": {
        "connection": {"$ref": "#/types/command:remote:Connection", "secret": true},
        "localPath": {"type": "string"},
        "remotePath": {"type": "string"},
        "triggers": {"type": "array", "items": {"$ref": "pulumi.json#/Any"}, "replaceOnChanges": true}
      },
      "required": ["connection", "localPath", "remotePath"],
      "inputProperties": {
        "connection": {"$ref": "#/types/command:remote:Connection", "secret": true},
        "localPath": {"type": "string"},
        "remotePath": {"type": "string"},
        "triggers": {"type": "array", "items": {"$ref": "pulumi.json#/Any"}, "replaceOnChanges": true}
      },
      "requiredInputs": ["connection", "localPath", "remotePath"]
    }
  },
  "functions": {
    "command:local:run": {
      "description": "A local command to be executed unconditionally.",
      "inputs": {
        "properties": {
          "addPreviousOutputInEnv": {"type": "boolean", "default": true},
          "archivePaths": {"type": "array", "items": {"type": "string"}},
          "assetPaths": {"type": "array", "items": {"type": "string"}},
          "command": {"type": "string"},
          "dir": {"type": "string"},
          "environment": {"type": "object", "additionalProperties": {"type": "string"}},
          "interpreter": {"type": "array", "items": {"type": "string"}},
          "logging": {"$ref": "#/types/command:local:Logging"},
          "stdin": {"type": "string"}
        },
        "type": "object",
        "required": ["command"]
      },
      "outputs": {
        "properties": {
          "addPreviousOutputInEnv": {"type": "boolean"},
          "archive": {"$ref": "pulumi.json#/Archive"},
          "archivePaths": {"type": "array", "items": {"type": "string"}},
          "assetPaths": {"type": "array", "items": {"type": "string"}},
          "assets": {"type": "object", "additionalProperties": {"$ref": "pulumi.json#/Asset"}},
          "command": {"type": "string"},
          "dir": {"type": "string"},
          "environment": {"type": "object", "additionalProperties": {"type": "string"}},
          "interpreter": {"type": "array", "items": {"type": "string"}},
          "logging": {"$ref": "#/types/command:local:Logging"},
          "stderr": {"type": "string"},
          "stdin": {"type": "string"},
          "stdout": {"type": "string"}
        },
        "type": "object",
        "required": ["command", "stderr", "stdout"]
      }
    }
  },
  "language": {
    "nodejs": {"packageName": "@pulumi/command"}
  }
}`
