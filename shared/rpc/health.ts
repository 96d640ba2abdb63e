import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { serviceError } from './errors.js';
import type { HealthCheckRequest, HealthCheckResponse } from './messages.js';

type ServingStatus = HealthCheckResponse['status'];

/**
 * The standard `grpc.health.v1.Health` service. `Check` with an empty service name reports the server as a
 * whole, and with a known service name that service. An unknown name fails with NOT_FOUND, as the gRPC
 * health checking protocol specifies. Every service starts SERVING.
 */
export class HealthService {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly changes = new EventEmitter();

  constructor(serviceNames: readonly string[]) {
    this.statuses.set('', 'SERVING');
    for (const name of serviceNames) this.statuses.set(name, 'SERVING');
  }

  /** Sets the status of every service, for example NOT_SERVING while shutting down. */
  setAll(serving: boolean): void {
    const next: ServingStatus = serving ? 'SERVING' : 'NOT_SERVING';
    for (const name of this.statuses.keys()) {
      this.statuses.set(name, next);
      this.changes.emit(name, next);
    }
  }

  /** Returns the grpc-js implementation to pass to `server.addService`. */
  implementation(): grpc.UntypedServiceImplementation {
    return {
      Check: (
        call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>,
        callback: grpc.sendUnaryData<HealthCheckResponse>,
      ) => {
        const current = this.statuses.get(call.request.service);
        if (current === undefined) {
          callback(
            serviceError(grpc.status.NOT_FOUND, `unknown service ${JSON.stringify(call.request.service)}`),
          );
          return;
        }
        callback(null, { status: current });
      },
      Watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const name = call.request.service;
        const send = (next: ServingStatus) => call.write({ status: next });
        send(this.statuses.get(name) ?? 'SERVICE_UNKNOWN');
        this.changes.on(name, send);
        call.on('cancelled', () => this.changes.off(name, send));
        call.on('close', () => this.changes.off(name, send));
      },
    };
  }
}
