import { PgferryError } from '@pgferry/core';
import { registryError } from './registry-client';

const URL = 'http://127.0.0.1:8080';
const PATH = '/subjects/t-value/versions';

describe('registryError: what a registry error response says', () => {
  it.each([
    {
      what: "Confluent's body (Apicurio's ccompat API answers the same)",
      status: 404,
      body: '{"message":"Subject \'t-value\' not found.","error_code":40401}',
      message: `schema registry POST ${PATH}: 404 Subject 't-value' not found.`,
      code: '40401',
      retriable: false,
    },
    {
      what: 'an incompatible schema',
      status: 409,
      body: '{"error_code":409,"message":"Schema being registered is incompatible with an earlier schema"}',
      message: `schema registry POST ${PATH}: 409 Schema being registered is incompatible with an earlier schema`,
      code: '409',
      retriable: false,
    },
    {
      what: "Apicurio outside its ccompat API (RESTEasy's problem body): the URL is wrong",
      status: 404,
      body: '{"detail":"NotFoundException: RESTEASY003210: Could not find resource for full path: http://127.0.0.1:8080/subjects/t-value/versions","title":"RESTEASY003210: Could not find resource for full path: http://127.0.0.1:8080/subjects/t-value/versions","status":404,"name":"NotFoundException"}',
      message:
        `schema registry POST ${PATH}: 404 NotFoundException: RESTEASY003210: Could not find resource for full path: http://127.0.0.1:8080/subjects/t-value/versions; ` +
        `${URL} is not the root of a Confluent-compatible registry API: set schemaRegistryUrl to it (Apicurio Registry 3: http://HOST:PORT/apis/ccompat/v7)`,
      code: '404',
      retriable: false,
    },
    {
      what: 'an empty 404 (Apicurio at /apis/ccompat/v6, which 3.x no longer serves)',
      status: 404,
      body: '',
      message: `schema registry POST ${PATH}: 404 empty; ${URL} is not the root of a Confluent-compatible registry API: set schemaRegistryUrl to it (Apicurio Registry 3: http://HOST:PORT/apis/ccompat/v7)`,
      code: '404',
      retriable: false,
    },
    {
      what: "a proxy's HTML page, cut to 200 characters",
      status: 502,
      body: `<html>\n<body>${'x'.repeat(300)}</body></html>`,
      message: `schema registry POST ${PATH}: 502 "<html> <body>${'x'.repeat(187)}..."`,
      code: '502',
      retriable: true,
    },
  ])('$what', ({ status, body, message, code, retriable }) => {
    const err = registryError(URL, 'POST', PATH, status, body);
    expect(err).toBeInstanceOf(PgferryError);
    expect({ message: err.message, code: err.code, retriable: err.retriable }).toEqual({
      message,
      code,
      retriable,
    });
  });
});
