// An error fdeploy explains itself: printed as one message (no stack trace), with an exit code
// (1 failed, 2 usage or config, 3 no app deployed, 5 server unreachable or host key mismatch).
export class FdeployError extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
  }
}
