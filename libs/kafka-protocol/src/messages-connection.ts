import { arr, f } from './schema-codec';
import { ApiKey, type ApiSpec } from './api-spec';

/** What a connection sends first: version negotiation and SASL authentication. */

export const API_VERSIONS: ApiSpec = {
  key: ApiKey.ApiVersions,
  name: 'ApiVersions',
  min: 0,
  max: 2,
  request: [],
  response: [
    f('errorCode', 'int16'),
    f('apiKeys', arr([f('apiKey', 'int16'), f('minVersion', 'int16'), f('maxVersion', 'int16')])),
    f('throttleTimeMs', 'int32', 1),
  ],
};

export const SASL_HANDSHAKE: ApiSpec = {
  key: ApiKey.SaslHandshake,
  name: 'SaslHandshake',
  // v1: the SASL tokens then travel in SaslAuthenticate requests (v0 sent them unframed).
  // v0 is in the range because librdkafka takes a broker's SASL support from it being
  // advertised; clients that know SaslAuthenticate (every one since Kafka 1.0) send v1.
  min: 0,
  max: 1,
  request: [f('mechanism', 'string')],
  response: [f('errorCode', 'int16'), f('mechanisms', arr('string'))],
};

export const SASL_AUTHENTICATE: ApiSpec = {
  key: ApiKey.SaslAuthenticate,
  name: 'SaslAuthenticate',
  min: 0,
  max: 1,
  request: [f('authBytes', 'bytes')],
  response: [
    f('errorCode', 'int16'),
    f('errorMessage', 'nstring'),
    f('authBytes', 'bytes'),
    f('sessionLifetimeMs', 'int64', 1),
  ],
};
