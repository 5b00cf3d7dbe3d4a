export * from './ident';
export * from './endpoint';
export * from './classify';
export * from './connect';
export * from './server';
export * from './catalog';
export * from './selection';
export * from './schema';
